"""What an OpenAI-compatible server accepts, found once at open() with two tiny requests.

`probe()` asks `/v1/completions` for four greedy tokens after a counting prompt:
1. with the prompt as token ids plus vLLM's extras (`return_token_ids`,
   `include_stop_str_in_output`). An HTTP error means the server refuses token-id prompts
   (llama-cpp-python: HTTP 500 "Input should be a valid string"), so the same request is sent
   with the prompt as text; if that is refused too, `open()` fails with the server's own message.
2. again with the first answer as a stop string and `logprobs=1`: the answer ends with the stop
   string when the server keeps it, is empty when it strips it; `logprobs` says whether
   per-token logprobs come back (a refusal is retried without them).
When the server returns token ids, they must decode to the text it returned with our
tokenizer, else the tokenizer is not the served model's (one `UserError`).
The context length comes from `/v1/models` (vLLM's `max_model_len`) or llama.cpp's `/props`
(`n_ctx`); unknown otherwise.

Not covered: sending real requests (server.py), failover (failover.py).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from agent.backends.errors import ServerDown, ServerError, error_message
from agent.errors import UserError

PROBE_TEXT = "1, 2, 3, 4, 5, 6, 7,"
PROBE_TIMEOUT = 120.0  # a busy CPU server may take a while even for four tokens
VLLM_EXTRAS = {"return_token_ids": True, "include_stop_str_in_output": True}


@dataclass(frozen=True)
class ServerCaps:
    """The request shape one server accepts and what it returns."""

    token_prompts: bool = True  # prompt as a list of token ids
    token_ids_out: bool = True  # completions carry the generated token ids
    keeps_stop: bool = True  # a matched stop string stays in the text (else restored client-side)
    logprobs: bool = False  # per-token logprobs come back
    max_model_len: int | None = None  # context length, when the server tells
    notes: tuple[str, ...] = field(default=())  # one line each, shown once at open

    def describe(self) -> str:
        return (f"prompts as {'token ids' if self.token_prompts else 'text'}, "
                f"ids {'returned' if self.token_ids_out else 'retokenised locally'}, "
                f"stop strings {'kept' if self.keeps_stop else 'restored client-side'}, "
                f"logprobs {'yes' if self.logprobs else 'no'}, context {self.max_model_len or 'unknown'}")


async def post_json(session: Any, url: str, path: str, body: dict[str, Any],
                    timeout: float = PROBE_TIMEOUT) -> dict[str, Any]:
    """POST and return the JSON answer; `ServerError` (4xx) or `ServerDown` (5xx, no answer)."""
    import aiohttp

    try:
        async with session.post(f"{url}{path}", json=body,
                                timeout=aiohttp.ClientTimeout(total=timeout)) as r:
            raw = await r.read()
            if r.status >= 500:
                raise ServerDown(url, r.status, error_message(raw))
            if r.status != 200:
                raise ServerError(url, r.status, error_message(raw))
            data = await r.json(content_type=None)
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
        raise ServerDown(url, None, f"{type(e).__name__}: {e}") from e
    if not isinstance(data, dict):
        raise ServerError(url, 200, f"not a JSON object: {str(data)[:200]}")
    return data


async def get_json(session: Any, url: str, path: str, timeout: float) -> Any | None:
    """GET a JSON document; None when the server has no such endpoint."""
    import aiohttp

    try:
        async with session.get(f"{url}{path}", timeout=aiohttp.ClientTimeout(total=timeout)) as r:
            if r.status != 200:
                return None
            return await r.json(content_type=None)
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError):
        return None


def _choice(data: dict[str, Any]) -> dict[str, Any]:
    choices = data.get("choices") or [{}]
    return choices[0] if isinstance(choices[0], dict) else {}


async def _first_request(session: Any, url: str, base: dict[str, Any], ids: list[int],
                         ) -> tuple[bool, dict[str, Any]]:
    """(token-id prompts accepted, the answer's first choice); UserError when both shapes fail."""
    try:
        return True, _choice(await post_json(session, url, "/v1/completions", {**base, "prompt": ids}))
    except ServerError as first:  # llama-cpp-python answers a token-id prompt with HTTP 500, not 4xx
        if first.status is None:
            raise UserError(f"cannot use server {url}: {first.message}") from first
        try:
            data = await post_json(session, url, "/v1/completions", {**base, "prompt": PROBE_TEXT})
        except ServerError as e:
            raise UserError(f"server {url} refuses completion requests: {e.message} "
                            f"(token-id prompt: {first.message})") from e
        return False, _choice(data)


async def _stop_request(session: Any, url: str, base: dict[str, Any], prompt: Any,
                        stop: str) -> tuple[bool, bool]:
    """(stop string kept, logprobs returned)."""
    body = {**base, "prompt": prompt, "stop": [stop], "logprobs": 1}
    try:
        choice = _choice(await post_json(session, url, "/v1/completions", body))
        logprobs = bool(choice.get("logprobs"))
    except ServerError:
        body.pop("logprobs")
        try:
            choice = _choice(await post_json(session, url, "/v1/completions", body))
        except ServerError as e:
            raise UserError(f"server {url} refuses stop strings: {e.message}") from e
        logprobs = False
    return str(choice.get("text") or "").endswith(stop), logprobs


def _check_tokenizer(url: str, tokenizer: Any, choice: dict[str, Any], source: str) -> None:
    out_ids, text = choice.get("token_ids"), str(choice.get("text") or "")
    if not out_ids or not text:
        return
    mine = tokenizer.decode([int(i) for i in out_ids], skip_special_tokens=False)
    if mine != text:
        raise UserError(f"the tokenizer from {source} does not match the model served at {url}: the server's "
                        f"token ids {list(out_ids)[:6]} are {text!r} there but {mine!r} here; give --model the "
                        "served model's folder or hub id")


async def context_length(session: Any, url: str, entry: dict[str, Any]) -> int | None:
    """vLLM's `max_model_len` in /v1/models, else llama.cpp's /props `n_ctx`, else None."""
    for key in ("max_model_len", "context_length", "max_context_length"):
        if isinstance(entry.get(key), int):
            return int(entry[key])
    props = await get_json(session, url, "/props", 5.0)
    if isinstance(props, dict):
        settings = props.get("default_generation_settings") or {}
        n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
        if isinstance(n_ctx, int):
            return n_ctx
    return None


async def probe(session: Any, url: str, model: str, tokenizer: Any, entry: dict[str, Any],
                source: str) -> ServerCaps:
    """Find what the server accepts; see the module docstring. `source`: where the tokenizer came from."""
    base = {"model": model, "max_tokens": 4, "temperature": 0.0, "stream": False, **VLLM_EXTRAS}
    ids = [int(i) for i in tokenizer.encode(PROBE_TEXT, add_special_tokens=False)]
    token_prompts, choice = await _first_request(session, url, base, ids)
    token_ids_out = isinstance(choice.get("token_ids"), list)
    if token_ids_out:
        _check_tokenizer(url, tokenizer, choice, source)
    answer = str(choice.get("text") or "")
    keeps_stop, logprobs = False, False
    if answer.strip():
        keeps_stop, logprobs = await _stop_request(session, url, base, ids if token_prompts else PROBE_TEXT,
                                                   answer)
    notes = []
    if not token_prompts:
        notes.append(f"server {url} takes text prompts only: prompts and continuations go as text, so a "
                     "continuation may be tokenised differently where model text and tool output meet")
    return ServerCaps(token_prompts=token_prompts, token_ids_out=token_ids_out, keeps_stop=keeps_stop,
                      logprobs=logprobs, max_model_len=await context_length(session, url, entry),
                      notes=tuple(notes))
