"""The one set of test doubles, honouring the real interfaces (`agent.backends.base.Backend`,
`sandbox.protocols.KernelPoolLike` / `SessionLike`), for unit tests of every package and for the
benches that need a fake.

`CharTokenizer` maps each character to its code point (token counts are character counts);
`ScriptedBackend` answers each request by calling `reply(prompt_text, params)` (and keeps each
prompt's ids) and honours stop strings and max_tokens the way vLLM does; `seeded_answers(...)` is
a reply script that answers by seed (CoT: filler then a boxed answer; TIR: a ```python block
printing it, then the box);
`FakePool` hands out sessions that run code with `exec` in a per-session namespace (a cell
marked `# crashed`, `# timeout` or `# error` fails that way); `HarmonyScript` replays gpt-oss's
harmony token sequences through the real harmony encoding. They are not models and not a
sandbox; the real engine, server and kernels have tests of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import math
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent import harmony
from agent.backends.base import Chunk, GenParams

EOS = 0
_OUT_RE = re.compile(r"```output\n(-?\d+)")


class CharTokenizer:
    name_or_path = "fake-small"
    eos_token_id = EOS

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return "".join(chr(i) for i in ids if i != EOS)

    def apply_chat_template(self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = True,
                            tokenize: bool = True, **_: Any) -> Any:
        text = "".join(f"<{m['role']}>{m['content']}\n" for m in messages) + "<assistant>"
        return self.encode(text) if tokenize else text


@dataclass
class ScriptedBackend:
    """`reply(prompt_text, params) -> str`; '<eos>' at the end of a reply means end of sequence."""

    reply: Callable[[str, GenParams], str]
    delay: float = 0.0  # seconds before each chunk
    chunk: int = 4  # characters per chunk
    name: str = "scripted"
    tokenizer: Any = field(default_factory=CharTokenizer)
    eos_token_ids: tuple[int, ...] = (EOS,)
    max_model_len: int | None = None
    aborted: list[str] = field(default_factory=list)
    requests: list[tuple[str, GenParams]] = field(default_factory=list)
    prompt_ids: list[list[int]] = field(default_factory=list)  # each request's prompt, as token ids
    open_streams: int = 0  # requests whose stream has not been closed yet
    chunks: int = 0  # chunks streamed so far, over all requests

    def _cut(self, text: str, params: GenParams) -> tuple[str, bool, str, str | None]:
        eos = text.endswith("<eos>")
        text = text.removesuffix("<eos>")
        finish, stop_reason = "stop", None
        cut = min((text.find(s) + len(s) for s in params.stop if s in text), default=None)
        if cut is not None:
            text, eos, stop_reason = text[:cut], False, next(s for s in params.stop if text[:cut].endswith(s))
        if len(text) > params.max_tokens:
            text, eos, finish, stop_reason = text[: params.max_tokens], False, "length", None
        return text, eos, finish, stop_reason

    async def stream(self, prompt_ids: Sequence[int], params: GenParams, request_id: str) -> AsyncIterator[Chunk]:
        prompt = self.tokenizer.decode(prompt_ids)
        self.requests.append((prompt, params))
        self.prompt_ids.append([int(i) for i in prompt_ids])
        text, eos, finish, stop_reason = self._cut(self.reply(prompt, params), params)
        n = self.chunk
        self.open_streams += 1
        try:
            for i in range(0, len(text), n):
                if self.delay:
                    await asyncio.sleep(self.delay)
                last = i + n >= len(text)
                ids = tuple(ord(c) for c in text[i : i + n]) + ((EOS,) if last and eos else ())
                self.chunks += 1
                yield Chunk(text[i : i + n], ids, finish if last else None, stop_reason if last else None)
            if not text:
                yield Chunk("", (EOS,) if eos else (), finish, stop_reason)
        finally:
            self.open_streams -= 1

    async def abort(self, request_id: str) -> None:
        self.aborted.append(request_id)

    async def close(self) -> None:
        pass


def seeded_answers(answers: Sequence[int] = (42,), pad: int = 40) -> Callable[[str, GenParams], str]:
    """A reply script: the answer is `answers[seed % len(answers)]`. CoT: `pad` filler characters,
    then `\\boxed{A}` and EOS. TIR (a request with stop strings): first a ```python block printing
    A (stopped on the fence), then, once the prompt holds the output, `\\boxed{<printed value>}`."""
    filler = ("think " * (pad // 6 + 1))[:pad]

    def reply(prompt: str, params: GenParams) -> str:
        value = answers[(params.seed or 0) % len(answers)]
        if params.stop:
            printed = _OUT_RE.findall(prompt[prompt.rfind("<assistant>"):])
            if not printed:
                return f"{filler}\n```python\nprint({value})\n```\n"
            return f"So the answer is \\boxed{{{printed[-1]}}}.<eos>"
        return f"{filler} The answer is \\boxed{{{value}}}.<eos>"

    return reply


def FakeBackend(answers: Sequence[int] = (42,), pad: int = 40, chunk: int = 16, delay: float = 0.0,
                name: str = "fake") -> ScriptedBackend:
    """A ScriptedBackend on `seeded_answers` (the run machinery's usual double)."""
    return ScriptedBackend(seeded_answers(answers, pad), delay=delay, chunk=chunk, name=name)


@dataclass(frozen=True)
class FakeResult:
    status: str
    output: str
    seconds: float = 0.001
    truncated: bool = False
    error_name: str | None = None
    state_lost: bool = False


class FakeSession:
    def __init__(self) -> None:
        self.ns: dict[str, Any] = {}
        self.cells: list[str] = []

    async def run(self, code: str, timeout: float | None = None) -> FakeResult:
        self.cells.append(code)
        for status in ("crashed", "timeout", "error"):
            if f"# {status}" in code:
                return FakeResult(status, f"[{status}]")
        buf = io.StringIO()
        t0 = time.monotonic()
        try:
            with contextlib.redirect_stdout(buf):
                exec(code, self.ns)
            return FakeResult("ok", buf.getvalue(), time.monotonic() - t0)
        except Exception as e:
            return FakeResult("error", buf.getvalue() + f"{type(e).__name__}: {e}", time.monotonic() - t0,
                              error_name=type(e).__name__)


class FakePool:
    def __init__(self) -> None:
        self.sessions: list[FakeSession] = []
        self.released: list[FakeSession] = []

    async def acquire(self) -> FakeSession:
        s = FakeSession()
        self.sessions.append(s)
        return s

    async def release(self, s: FakeSession) -> None:
        self.released.append(s)

    async def close(self) -> None:
        pass


@dataclass
class HarmonyScript:
    reply: Callable[[str, GenParams], str | tuple[str, float]]
    top_logprob: float = math.log(0.9)
    delay: float = 0.0
    name: str = "harmony-script"
    max_model_len: int | None = None
    eos_token_ids: tuple[int, ...] = ()
    tokenizer: Any = field(default_factory=harmony.HarmonyTokenizer)
    requests: list[tuple[str, GenParams]] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)

    async def stream(self, prompt_ids: Sequence[int], params: GenParams, request_id: str) -> AsyncIterator[Chunk]:
        enc = harmony.encoding()
        prompt = enc.decode(list(prompt_ids))
        self.requests.append((prompt, params))
        said = self.reply(prompt, params)
        text, top = said if isinstance(said, tuple) else (said, self.top_logprob)
        ids = [int(i) for i in enc.encode(text, allowed_special="all")]
        finish = "length"
        stops = [n for n, t in enumerate(ids) if t in params.stop_token_ids]
        if stops:
            ids, finish = ids[: stops[0] + 1], "stop"
        if len(ids) > params.max_tokens:
            ids, finish = ids[: params.max_tokens], "length"
        for i in range(0, max(len(ids), 1), 3):
            if self.delay:
                await asyncio.sleep(self.delay)
            part = ids[i : i + 3]
            last = i + 3 >= len(ids)
            lps = None
            if params.logprobs:
                rest = math.log((1 - math.exp(top)) / 2)
                lps = tuple(((t, top), (t + 1, rest), (t + 2, rest)) for t in part)
            yield Chunk(enc.decode(part), tuple(part), finish if last else None, None, lps)

    async def abort(self, request_id: str) -> None:
        self.aborted.append(request_id)

    async def close(self) -> None:
        pass
