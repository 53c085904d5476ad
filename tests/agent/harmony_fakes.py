"""A scripted backend that replays harmony token sequences (gpt-oss's format), for loop tests.

`HarmonyScript(reply)`: `reply(prompt_text, params) -> str` (or `(str, top logprob)`) returns the
model's next harmony text (special tokens written out, as gpt-oss emits them); it is encoded with the real harmony
encoding and streamed a few ids at a time, stopping after the first id in
`params.stop_token_ids` (included, as vLLM does) or at `max_tokens`. With `params.logprobs`
it sends made-up top-k logprobs (`logprob_of(token) -> float` for the top one). Only tests use it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent import harmony
from agent.backends.base import Chunk, GenParams


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
