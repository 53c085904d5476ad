"""Backend for an OpenAI-compatible server's `/v1/completions` (vLLM, SGLang, lmdeploy, TRT-LLM,
llama.cpp), streaming over HTTP with aiohttp.

Prompts go as token-id lists (the chat template is applied locally with `tokenizer`, loaded
from a local folder or the model name), so a TIR continuation is never re-tokenised. Each
request asks for `include_stop_str_in_output` and `return_token_ids` (both honoured by vLLM's
server; verified on vllm 0.32). When a server sends no token ids for a chunk, the chunk's text
is tokenised locally instead: that is exact for plain text but may split differently from the
model at chunk boundaries, so prefer a server that returns ids. Closing a stream (breaking
out of `stream()` or `abort()`) closes the HTTP response, which aborts the request on the
server. An unreachable server is a UserError at `open()` (GET /v1/models, short timeout).

It does not start servers (tests do) and does not retry failed requests.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from agent.backends.base import BackendError, Chunk, GenParams, eos_ids_of
from agent.errors import UserError

CONNECT_TIMEOUT = 5.0


def _base_url(url: str) -> str:
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


class ServerBackend:
    """Streams completions from a running server. Build it with `await ServerBackend.open(...)`."""

    name = "server"

    def __init__(self, url: str, model: str | None = None, tokenizer: Any = None) -> None:
        self.url = _base_url(url)
        self.model = model
        self.tokenizer = tokenizer
        self.eos_token_ids: tuple[int, ...] = ()
        self.max_model_len: int | None = None  # the served context, when the server reports it
        self._session: Any = None
        self._contexts: list[tuple[str, int]] = []
        self._responses: dict[str, Any] = {}

    @classmethod
    async def open(
        cls, url: str, model: str | None = None, tokenizer: Any = None, timeout: float = CONNECT_TIMEOUT
    ) -> ServerBackend:
        """Check the server answers, learn the served model name, load the tokenizer.

        `tokenizer` may be a tokenizer object, a local folder / hub id to load one from, or
        None (then the served model name is used, which works when it is a folder or hub id).
        """
        backend = cls(url, None, None)
        served = await backend._served_models(timeout)
        backend.model, source = _pick_model(backend.url, served, model)
        if tokenizer is not None:
            source = tokenizer
        backend.tokenizer = _load_tokenizer(source) if isinstance(source, str) else source
        backend.eos_token_ids = eos_ids_of(backend.tokenizer)
        backend.max_model_len = dict(backend._contexts).get(backend.model)
        return backend

    def _client(self) -> Any:
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),  # one connection per concurrent stream
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=30),
            )
        return self._session

    async def _served_models(self, timeout: float) -> list[tuple[str, str | None]]:
        """(name, root) of each served model; `root` is vLLM's source folder, if reported."""
        import aiohttp

        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as s:
                async with s.get(f"{self.url}/v1/models") as r:
                    if r.status != 200:
                        raise UserError(f"server {self.url} answered HTTP {r.status} to GET /v1/models")
                    body = await r.json()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            raise UserError(f"cannot reach server {self.url}: {type(e).__name__}: {e}") from e
        data = body.get("data", [])
        self._contexts = [(str(m["id"]), m.get("max_model_len")) for m in data if isinstance(m.get("max_model_len"), int)]
        return [(str(m["id"]), m.get("root")) for m in data]

    def _body(self, prompt_ids: Sequence[int], params: GenParams, request_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": [int(i) for i in prompt_ids],  # fails loud on a BatchEncoding
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p if params.temperature > 0 else 1.0,
            "stream": True,
            "include_stop_str_in_output": True,
            "return_token_ids": True,
        }
        if params.stop:
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
        return body

    async def stream(self, prompt_ids: Sequence[int], params: GenParams, request_id: str) -> AsyncIterator[Chunk]:
        """Yield chunks of one request; leaving the loop early closes it (the server aborts)."""
        body = self._body(prompt_ids, params, request_id)
        headers = {"X-Request-Id": request_id}
        import aiohttp

        try:
            response = await self._client().post(f"{self.url}/v1/completions", json=body, headers=headers)
        except (aiohttp.ClientError, OSError) as e:
            raise BackendError(f"server {self.url} is not answering: {type(e).__name__}: {e}", self.url) from e
        self._responses[request_id] = response
        finished = False
        try:
            if response.status != 200:
                raise BackendError(_http_error(self.url, response.status, await response.text()), self.url)
            async for chunk in self._chunks(response):
                finished = chunk.finish_reason is not None
                yield chunk
            if not finished:  # stream closed by abort() or the server
                yield Chunk("", (), finish_reason="abort")
                finished = True
        finally:
            self._responses.pop(request_id, None)
            response.close()

    async def _chunks(self, response: Any) -> AsyncIterator[Chunk]:
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
                    raise BackendError(f"server {self.url} error: {_message(event['error'])}", self.url)
                for choice in event.get("choices", []):
                    yield self._to_chunk(choice)
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as e:
            if response.closed:  # closed by abort(): the caller gets an "abort" chunk
                return
            raise BackendError(f"server {self.url} dropped the stream: {type(e).__name__}: {e}", self.url) from e

    def _to_chunk(self, choice: dict[str, Any]) -> Chunk:
        text = choice.get("text") or ""
        ids = choice.get("token_ids")
        if ids is None:  # server does not return ids: tokenise the text locally
            ids = self.tokenizer.encode(text, add_special_tokens=False) if text else []
        stop = choice.get("stop_reason")
        return Chunk(
            text=text,
            token_ids=tuple(int(i) for i in ids),
            finish_reason=choice.get("finish_reason"),
            stop_reason=stop if isinstance(stop, str) else None,
            logprobs=parse_logprobs(choice.get("logprobs")),
        )

    async def abort(self, request_id: str) -> None:
        """Close the request's HTTP stream; the server aborts the request."""
        response = self._responses.pop(request_id, None)
        if response is not None:
            response.close()

    async def close(self) -> None:
        for response in list(self._responses.values()):
            response.close()
        self._responses.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None


def _message(error: Any) -> str:
    """The human part of an OpenAI-style error payload ({"message": ...} or a string)."""
    if isinstance(error, dict):
        return str(error.get("message") or error.get("detail") or error)
    return str(error)


def _http_error(url: str, status: int, body: str) -> str:
    """One line for a refused request, carrying the server's own message."""
    try:
        payload = json.loads(body)
        detail = _message(payload.get("error", payload.get("detail", payload))) if isinstance(payload, dict) else body
    except json.JSONDecodeError:
        detail = body
    detail = " ".join(str(detail).split())[:400] or "(empty body)"
    return f"server {url} answered HTTP {status}: {detail}"


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
    served model is the one whose vLLM `root` is that folder, or the only one served.
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
            raise UserError(f"server {url} serves {names}; none of them is {model}")
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
            f"cannot load a tokenizer from {source!r} (pass --tokenizer with a local model folder): {e}"
        ) from e
