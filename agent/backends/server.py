"""Backend for an OpenAI-compatible server's `/v1/completions` (vLLM, SGLang, lmdeploy, TRT-LLM,
llama.cpp), streaming over HTTP with aiohttp.

At `open()` the server is probed once (`server_probe.probe`) and each request takes the shape
it accepts: prompts as token ids where accepted (so a TIR continuation is never re-tokenised),
else the same chat-templated prompt as text, with one notice line that a continuation may be
tokenised differently at its seams. Token ids come back from servers that return them
(vLLM's `return_token_ids`); otherwise each chunk's text is tokenised locally and an
end-of-sequence id is appended when the model stopped on its own. Stop strings are sent to
servers that keep them in the output (`include_stop_str_in_output`); for servers that strip
them, they are matched here instead, the text is cut just after the stop string and the
request is closed, so the TIR loop sees the closing fence exactly as from vLLM. Per-request
settings: `min_p`, `stop_token_ids` (harmony), top-k `logprobs` (keyed "token_id:N" through
vLLM's `return_tokens_as_token_ids`), and `GenParams.extra_args` as `vllm_xargs` (the
thought-switching penalty needs a vLLM server started with
`--logits-processors agent.backends.tip_vllm:TIPLogitsProcessor`).

The served model name comes from `/v1/models`; `--model` may be a local tokenizer folder (then
the served name is used in requests). Failures say what happened in one line: an HTTP error
carries the server's message (`ServerError`); a dead, refusing or stalled server is a
`ServerDown`; both are `BackendError`s, which stop the run with one line unless a failover
pool moves the work to another server. Closing a stream (breaking out of `stream()` or
`abort()`) closes the HTTP response, which aborts the request on the server.

It does not start servers (tests do) and does not retry: `failover.FailoverBackend` does.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from agent.backends.base import Chunk, GenParams, eos_ids_of
from agent.backends.errors import ServerDown, ServerError, error_message
from agent.backends.server_probe import VLLM_EXTRAS, ServerCaps, get_json, probe
from agent.errors import UserError

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 600.0  # seconds without a byte on a stream before the server counts as down
log = logging.getLogger("tirmath.server")


def _base_url(url: str) -> str:
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


class ServerBackend:
    """Streams completions from a running server. Build it with `await ServerBackend.open(...)`."""

    name = "server"

    def __init__(self, url: str, model: str | None = None, tokenizer: Any = None,
                 caps: ServerCaps | None = None) -> None:
        self.url = _base_url(url)
        self.model = model
        self.tokenizer = tokenizer
        self.caps = caps or ServerCaps()
        self.max_model_len: int | None = self.caps.max_model_len  # the served context, when the server tells
        self.eos_token_ids: tuple[int, ...] = eos_ids_of(tokenizer) if tokenizer is not None else ()
        self.read_timeout = READ_TIMEOUT
        self._session: Any = None
        self._responses: dict[str, Any] = {}
        self._aborted: set[str] = set()

    @classmethod
    async def open(
        cls, url: str, model: str | None = None, tokenizer: Any = None, timeout: float = CONNECT_TIMEOUT
    ) -> ServerBackend:
        """Check the server answers, learn the served model name, load the tokenizer, probe the server.

        `tokenizer` may be a tokenizer object, a local folder / hub id to load one from, or
        None (then `model`, if a local folder, else the served model name, which works when it
        is a folder or hub id).
        """
        backend = cls(url, None, None)
        entries = await backend._served_models(timeout)
        served = [(str(m["id"]), m.get("root")) for m in entries]
        backend.model, source = _pick_model(backend.url, served, model)
        if tokenizer is not None:
            source = tokenizer
        backend.tokenizer = _load_tokenizer(source) if isinstance(source, str) else source
        backend.eos_token_ids = eos_ids_of(backend.tokenizer)
        entry = next(m for m in entries if str(m["id"]) == backend.model)
        try:
            backend.caps = await probe(backend._client(), backend.url, backend.model, backend.tokenizer,
                                       entry, str(source) if isinstance(source, str) else "the given tokenizer")
        except BaseException:
            await backend.close()
            raise
        backend.max_model_len = backend.caps.max_model_len
        for note in backend.caps.notes:
            log.warning(note)
        return backend

    def _client(self) -> Any:
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),  # one connection per concurrent stream
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=self.read_timeout),
            )
        return self._session

    async def _served_models(self, timeout: float) -> list[dict[str, Any]]:
        """The `data` entries of /v1/models (id, vLLM's `root` and `max_model_len`, ...)."""
        import aiohttp

        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as s:
                async with s.get(f"{self.url}/v1/models") as r:
                    if r.status != 200:
                        msg = error_message(await r.read())
                        raise UserError(f"server {self.url} answered HTTP {r.status} to GET /v1/models: {msg}")
                    body = await r.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            raise UserError(f"cannot reach server {self.url}: {type(e).__name__}: {e}") from e
        return [m for m in body.get("data", []) if isinstance(m, dict) and "id" in m]

    # -- request shape: small pieces, one per concern ------------------------------------------

    def request_body(self, prompt_ids: Sequence[int], params: GenParams) -> dict[str, Any]:
        """The JSON body of one streamed /v1/completions request, in the shape this server accepts."""
        return {"model": self.model, "prompt": self._prompt_field(prompt_ids), "stream": True,
                **self._sampling_fields(params), **self._extra_fields()}

    def _prompt_field(self, prompt_ids: Sequence[int]) -> list[int] | str:
        ids = [int(i) for i in prompt_ids]  # fails loud on a BatchEncoding
        if self.caps.token_prompts:
            return ids
        return str(self.tokenizer.decode(ids, skip_special_tokens=False))

    def _sampling_fields(self, params: GenParams) -> dict[str, Any]:
        body: dict[str, Any] = {
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p if params.temperature > 0 else 1.0,
        }
        if params.stop and self.caps.keeps_stop:  # else matched here (see _Decoder)
            body["stop"] = list(params.stop)
        if params.ignore_eos:
            body["ignore_eos"] = True
        if params.seed is not None:
            body["seed"] = params.seed
        if params.min_p:
            body["min_p"] = params.min_p
        if params.stop_token_ids:
            body["stop_token_ids"] = list(params.stop_token_ids)
        if params.logprobs:  # top-k per token, keyed "token_id:N" (vLLM's return_tokens_as_token_ids)
            body["logprobs"] = params.logprobs
            body["return_tokens_as_token_ids"] = True
        if params.extra_args:  # per-request settings for the server's logits processors (e.g. TIP)
            body["vllm_xargs"] = {k: list(v) if isinstance(v, tuple) else v for k, v in params.extra_args}
        return body

    def _extra_fields(self) -> dict[str, Any]:
        return dict(VLLM_EXTRAS) if (self.caps.token_ids_out or self.caps.keeps_stop) else {}

    # -- streaming ------------------------------------------------------------------------------

    async def _post(self, body: dict[str, Any], request_id: str) -> Any:
        import aiohttp

        try:
            # no X-Request-Id header: llama-cpp-python refuses one that is not a UUID (empty HTTP 400)
            response = await self._client().post(f"{self.url}/v1/completions", json=body)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            raise ServerDown(self.url, None, f"{type(e).__name__}: {e}") from e
        if response.status != 200:
            raw = await response.read()
            response.close()
            cls = ServerDown if response.status >= 500 else ServerError
            raise cls(self.url, response.status, error_message(raw))
        return response

    async def stream(self, prompt_ids: Sequence[int], params: GenParams, request_id: str) -> AsyncIterator[Chunk]:
        """Yield chunks of one request; leaving the loop early closes it (the server aborts)."""
        response = await self._post(self.request_body(prompt_ids, params), request_id)
        self._responses[request_id] = response
        decoder = _Decoder(self, params)
        try:
            async for choice in self._choices(response, request_id):
                chunk = decoder.feed(choice)
                if chunk is not None:
                    yield chunk
                if decoder.finished:
                    return
            if request_id in self._aborted:
                yield Chunk("", (), finish_reason="abort")
            else:
                raise ServerDown(self.url, None, "the stream ended before the completion finished")
        finally:
            self._responses.pop(request_id, None)
            self._aborted.discard(request_id)
            response.close()

    async def _choices(self, response: Any, request_id: str) -> AsyncIterator[dict[str, Any]]:
        import aiohttp

        try:
            async for raw in response.content:
                line = raw.decode("utf-8").strip()
                if not line.startswith("data:"):
                    continue
                data = line[len("data:") :].strip()
                if data == "[DONE]":
                    return
                event = json.loads(data)
                if "error" in event:
                    raise ServerError(self.url, None, error_message(data))
                for choice in event.get("choices", []):
                    yield choice
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            if request_id in self._aborted:  # closed by abort(): the caller gets an "abort" chunk
                return
            raise ServerDown(self.url, None, f"stream broke off ({type(e).__name__}: {e})") from e

    async def healthy(self, timeout: float = CONNECT_TIMEOUT) -> bool:
        """True when the server answers GET /v1/models (used to bring a down server back)."""
        return await get_json(self._client(), self.url, "/v1/models", timeout) is not None

    async def abort(self, request_id: str) -> None:
        """Close the request's HTTP stream; the server aborts the request."""
        response = self._responses.pop(request_id, None)
        if response is not None:
            self._aborted.add(request_id)
            response.close()

    async def close(self) -> None:
        for response in list(self._responses.values()):
            response.close()
        self._responses.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None


class _Decoder:
    """Turns one request's streamed choices into Chunks: ids, restored stop strings, EOS."""

    def __init__(self, backend: ServerBackend, params: GenParams) -> None:
        self.tok = backend.tokenizer
        self.caps = backend.caps
        self.stops = tuple(params.stop)
        self.local_stops = bool(self.stops) and not self.caps.keeps_stop
        self.text = ""  # all text passed on so far
        self.finished = False

    def _ids(self, text: str) -> tuple[int, ...]:
        return tuple(int(i) for i in self.tok.encode(text, add_special_tokens=False)) if text else ()

    def feed(self, choice: dict[str, Any]) -> Chunk | None:
        text = str(choice.get("text") or "")
        finish = choice.get("finish_reason")
        if self.local_stops:
            hit = self._match(text)
            if hit is not None:
                cut, matched = hit
                self.finished = True
                self.text += cut
                return Chunk(cut, self._ids(cut), finish_reason="stop", stop_reason=matched,
                             logprobs=parse_logprobs(choice.get("logprobs")))
        ids = choice.get("token_ids")
        out_ids = tuple(int(i) for i in ids) if isinstance(ids, list) else self._ids(text)
        self.text += text
        reported = choice.get("stop_reason")
        stop: str | None = reported if isinstance(reported, str) else None
        if finish == "stop" and stop is None:
            stop = next((s for s in self.stops if self.text.endswith(s)), None) if self.caps.keeps_stop else None
            eos = getattr(self.tok, "eos_token_id", None)
            if stop is None and not isinstance(ids, list) and eos is not None:
                out_ids += (int(eos),)  # the model ended on its own: as vLLM reports it
        self.finished = finish is not None
        if not text and not out_ids and finish is None:
            return None
        return Chunk(text=text, token_ids=out_ids, finish_reason=finish, stop_reason=stop,
                     logprobs=parse_logprobs(choice.get("logprobs")))

    def _match(self, text: str) -> tuple[str, str] | None:
        """(text up to and with the first stop string, that string) if one completes in `text`."""
        joined = self.text + text
        start = max(0, len(self.text) - max(len(s) for s in self.stops) + 1)
        best: tuple[int, str] | None = None
        for s in self.stops:
            at = joined.find(s, start)
            if at >= 0 and (best is None or at + len(s) < best[0]):
                best = (at + len(s), s)
        if best is None:
            return None
        return joined[len(self.text) : best[0]], best[1]


def _token_key(key: str) -> int:
    """A top_logprobs key "token_id:N" as N; -1 when the server sent the token's text instead."""
    head, _, tail = key.rpartition(":")
    return int(tail) if head == "token_id" and tail.lstrip("-").isdigit() else -1


def parse_logprobs(lp: dict[str, Any] | None) -> tuple[tuple[tuple[int, float], ...], ...] | None:
    """A /v1/completions `logprobs` object's `top_logprobs` as per-token (id, logprob) pairs."""
    if not lp or not lp.get("top_logprobs"):
        return None
    out = []
    for top in lp["top_logprobs"]:
        pairs = sorted(((_token_key(k), float(v)) for k, v in (top or {}).items()), key=lambda p: -p[1])
        out.append(tuple(pairs))
    return tuple(out)


def _pick_model(url: str, served: list[tuple[str, str | None]], model: str | None) -> tuple[str, str]:
    """(served model name, tokenizer source) for the `model` the user named (or None).

    `model` may be a served name, or a local folder: then the tokenizer comes from it and the
    served model is the one whose vLLM `root` is that folder, or the only one served (e.g.
    llama.cpp, which names its model by the GGUF path).
    """
    if not served:
        raise UserError(f"server {url} lists no models at /v1/models")
    names = [name for name, _ in served]
    local = model is not None and Path(model).expanduser().is_dir()
    if model is None or (local and model not in names):
        if local:
            want = str(Path(model).expanduser().resolve())  # type: ignore[arg-type]
            match = [n for n, root in served if root and str(Path(root).resolve()) == want]
            if match or len(served) == 1:
                return (match or names)[0], want
            raise UserError(f"server {url} serves {names}; none of them is {model}: give --model one of those names")
        name, root = served[0]
        return name, root if root and Path(root).is_dir() else name
    if model not in names:
        raise UserError(f"server {url} does not serve model {model!r}; it serves {names}")
    root = dict(served).get(model)
    return model, root if root and Path(root).is_dir() else model


def _load_tokenizer(source: str) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as e:
        raise UserError(
            f"cannot load a tokenizer from {source!r} (give --model a local folder with the served "
            f"model's tokenizer, or its hub id): {e}"
        ) from e
