"""Fakes that honour the Backend and kernel-pool interfaces, for unit-testing loop logic.

`CharTokenizer` maps each character to its code point (so token counts are character
counts); `ScriptedBackend` answers each request by calling a function of the prompt text and
honours stop strings and max_tokens the way vLLM does; `FakePool` runs code with `exec` in a
per-session namespace. None of these is used outside tests; the real engine, server and
sandbox have tests of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.backends.base import Chunk, GenParams

EOS = 0


class CharTokenizer:
    name_or_path = "fake-small"
    eos_token_id = EOS

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return "".join(chr(i) for i in ids if i != EOS)

    def apply_chat_template(self, messages: list[dict[str, str]], add_generation_prompt: bool = True,
                            tokenize: bool = True) -> list[int]:
        text = "".join(f"<{m['role']}>{m['content']}\n" for m in messages) + "<assistant>"
        return self.encode(text)


@dataclass
class ScriptedBackend:
    """`reply(prompt_text, params) -> str`; '<eos>' at the end of a reply means end of sequence."""

    reply: Callable[[str, GenParams], str]
    delay: float = 0.0  # seconds per chunk of 4 characters
    name: str = "scripted"
    tokenizer: Any = field(default_factory=CharTokenizer)
    aborted: list[str] = field(default_factory=list)
    requests: list[tuple[str, GenParams]] = field(default_factory=list)

    async def stream(self, prompt_ids: Sequence[int], params: GenParams, request_id: str) -> AsyncIterator[Chunk]:
        prompt = self.tokenizer.decode(prompt_ids)
        self.requests.append((prompt, params))
        text = self.reply(prompt, params)
        eos = text.endswith("<eos>")
        text = text.removesuffix("<eos>")
        finish, stop_reason = "stop", None
        cut = min((text.find(s) + len(s) for s in params.stop if s in text), default=None)
        if cut is not None:
            text, eos, stop_reason = text[:cut], False, next(s for s in params.stop if text[:cut].endswith(s))
        if len(text) > params.max_tokens:
            text, eos, finish, stop_reason = text[: params.max_tokens], False, "length", None
        for i in range(0, len(text), 4):
            if self.delay:
                await asyncio.sleep(self.delay)
            last = i + 4 >= len(text)
            ids = tuple(ord(c) for c in text[i : i + 4]) + ((EOS,) if last and eos else ())
            yield Chunk(text[i : i + 4], ids, finish if last else None, stop_reason if last else None)
        if not text:
            yield Chunk("", (EOS,) if eos else (), finish, stop_reason)

    async def abort(self, request_id: str) -> None:
        self.aborted.append(request_id)

    async def close(self) -> None:
        pass


@dataclass(frozen=True)
class FakeResult:
    status: str
    output: str
    seconds: float
    state_lost: bool = False


class FakeSession:
    def __init__(self) -> None:
        self.ns: dict[str, Any] = {}
        self.cells: list[str] = []

    async def run(self, code: str, timeout: float | None = None) -> FakeResult:
        self.cells.append(code)
        buf = io.StringIO()
        t0 = time.monotonic()
        try:
            with contextlib.redirect_stdout(buf):
                exec(code, self.ns)
            return FakeResult("ok", buf.getvalue(), time.monotonic() - t0)
        except Exception as e:
            return FakeResult("error", buf.getvalue() + f"{type(e).__name__}: {e}", time.monotonic() - t0)


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
