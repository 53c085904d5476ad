"""Test and bench doubles that honour the real interfaces: a char-level tokenizer, a scripted
`Backend`, and a kernel pool whose sessions answer `print(<int>)` cells.

They exist so the run machinery (store, resume, concurrency, metrics, gen-tir filters) can be
exercised fast and deterministically with the real `agent.solve` and `agent.rollout` on top.
They are not models and not a sandbox: `FakeSession` never executes code.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from agent.backends.base import Chunk, GenParams

EOS = 0
_PRINT_RE = re.compile(r"print\((-?\d+)\)")
_OUT_RE = re.compile(r"```output\n(-?\d+)")


class FakeTokenizer:
    """One token per character; id 0 is end-of-sequence."""

    name_or_path = "fake-char-tokenizer"
    eos_token_id = EOS

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return "".join(chr(i) for i in ids if i != EOS)

    def apply_chat_template(self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = True,
                            tokenize: bool = True, **_: Any) -> Any:
        text = "".join(f"<|{m['role']}|>{m['content']}\n" for m in messages) + "<|assistant|>"
        return self.encode(text) if tokenize else text


class FakeBackend:
    """Scripted completions: the answer is `answers[seed % len(answers)]`.

    CoT: `pad` filler characters, then `\\boxed{A}` and EOS. TIR (a request with stop strings):
    first a ```python block printing A (stopped on the fence), then, once the prompt holds the
    output, `\\boxed{<printed value>}`. Every chunk holds `chunk` characters; `delay` seconds
    pass before each chunk. `max_tokens` is honoured ("length").
    """

    def __init__(self, answers: Sequence[int] = (42,), pad: int = 40, chunk: int = 16, delay: float = 0.0,
                 name: str = "fake"):
        self.name = name
        self.tokenizer = FakeTokenizer()
        self.answers = list(answers)
        self.pad, self.chunk, self.delay = pad, chunk, delay
        self.requests = 0
        self.aborted: set[str] = set()

    def _script(self, prompt: str, params: GenParams) -> tuple[str, str | None]:
        seed = params.seed or 0
        tail = prompt[prompt.rfind("<|assistant|>"):]
        filler = ("think " * (self.pad // 6 + 1))[: self.pad]
        if params.stop:
            printed = _OUT_RE.findall(tail)
            if not printed:
                value = self.answers[seed % len(self.answers)]
                return f"{filler}\n```python\nprint({value})\n```\n", "```\n"
            return f"So the answer is \\boxed{{{printed[-1]}}}.", None
        value = self.answers[seed % len(self.answers)]
        return f"{filler} The answer is \\boxed{{{value}}}.", None

    async def stream(self, prompt_ids: Sequence[int], params: GenParams, request_id: str) -> AsyncIterator[Chunk]:
        self.requests += 1
        text, stop = self._script(self.tokenizer.decode(prompt_ids), params)
        finish, eos = "stop", stop is None
        if len(text) > params.max_tokens:
            text, finish, stop, eos = text[: params.max_tokens], "length", None, False
        for i in range(0, len(text), self.chunk):
            if self.delay:
                await asyncio.sleep(self.delay)
            piece = text[i : i + self.chunk]
            last = i + self.chunk >= len(text)
            ids = tuple(ord(c) for c in piece) + ((EOS,) if last and eos else ())
            yield Chunk(piece, ids, finish if last else None, stop if last else None)
        if not text:
            yield Chunk("", (), finish, stop)

    async def abort(self, request_id: str) -> None:
        self.aborted.add(request_id)

    async def close(self) -> None:
        return None


@dataclass(frozen=True)
class FakeExecResult:
    status: str
    output: str
    seconds: float = 0.001
    truncated: bool = False
    error_name: str | None = None
    state_lost: bool = False


class FakeSession:
    """Answers `print(<int>)` with the integer; a cell containing `status` words fails that way."""

    async def run(self, code: str, timeout: float | None = None) -> FakeExecResult:
        for status in ("crashed", "timeout", "error"):
            if f"# {status}" in code:
                return FakeExecResult(status, f"[{status}]")
        m = _PRINT_RE.search(code)
        return FakeExecResult("ok", (m.group(1) + "\n") if m else "")


class FakePool:
    def __init__(self) -> None:
        self.acquired = 0
        self.released = 0

    async def acquire(self) -> FakeSession:
        self.acquired += 1
        return FakeSession()

    async def release(self, session: FakeSession) -> None:
        self.released += 1

    async def close(self) -> None:
        return None
