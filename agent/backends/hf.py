"""Slow fallback backend on plain transformers, for machines without vLLM.

A manual token loop (KV cache, greedy or temperature/top-p sampling with a seeded
`torch.Generator`) runs in a worker thread and hands chunks to the event loop; one request
runs at a time (others wait their turn). Stop strings are matched on the decoded text and
included in it; a finished-by-EOS request carries the EOS id with no text, as does one that
stopped on `GenParams.stop_token_ids`. `min_p` and top-k `logprobs` are honoured. `abort()` or
leaving `stream()` early sets a flag the loop checks every token.

It does not batch requests, and it is not fast: use the vLLM backends for real work.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.backends.base import Chunk, GenParams, eos_ids_of


@dataclass
class _Request:
    cancel: threading.Event = field(default_factory=threading.Event)


def _top_logprobs(logits: Any, k: int) -> tuple[tuple[int, float], ...]:
    """The k most likely next tokens and their logprobs (raw model distribution, as vLLM)."""
    import torch

    lp = torch.log_softmax(logits.float(), dim=-1)
    vals, idx = torch.topk(lp, k)
    return tuple((int(i), float(v)) for i, v in zip(idx.tolist(), vals.tolist(), strict=True))


def _pick(logits: Any, params: GenParams, gen: Any) -> int:
    import torch

    if params.temperature <= 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / params.temperature, dim=-1)
    if params.min_p > 0:
        probs = torch.where(probs >= params.min_p * probs.max(), probs, torch.zeros_like(probs))
    if params.top_p < 1.0:
        sorted_p, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_p, dim=-1) - sorted_p < params.top_p
        sorted_p = torch.where(keep, sorted_p, torch.zeros_like(sorted_p))
        probs = torch.zeros_like(probs).scatter(0, order, sorted_p)
    return int(torch.multinomial(probs, 1, generator=gen))


class _TextTracker:
    """Turns generated ids into text increments and finds stop strings."""

    def __init__(self, tokenizer: Any, stop: tuple[str, ...]) -> None:
        self.tokenizer, self.stop = tokenizer, stop
        self.ids: list[int] = []
        self.sent = ""

    def add(self, token: int) -> tuple[str, str | None]:
        """Append a token; return (new text, matched stop string or None)."""
        self.ids.append(token)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # incomplete UTF-8 sequence: wait for the next token
            return "", None
        start = max(0, len(self.sent) - max((len(s) for s in self.stop), default=0))
        hits = [(text.find(s, start), s) for s in self.stop if text.find(s, start) >= 0]
        if hits:
            pos, s = min(hits)
            text = text[: pos + len(s)]
            new, self.sent = text[len(self.sent) :], text
            return new, s
        new, self.sent = text[len(self.sent) :], text
        return new, None


class HFBackend:
    """transformers model + tokenizer; build with `HFBackend.load(model)` (or `await create`)."""

    name = "hf"

    def __init__(self, model: Any, tokenizer: Any, threads: int | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.threads = threads
        self.eos_token_ids = eos_ids_of(tokenizer, getattr(model, "generation_config", None))
        self._eos = set(self.eos_token_ids)
        self.max_model_len: int | None = getattr(getattr(model, "config", None), "max_position_embeddings", None)
        self._lock = threading.Lock()
        self._requests: dict[str, _Request] = {}

    @classmethod
    def load(cls, model: str, dtype: str = "float32", threads: int | None = None, tokenizer: Any = None) -> HFBackend:
        """Load `model`; `threads` caps torch's CPU threads for generation (on a busy box,
        more OpenMP threads than free cores made each token ~10x slower here). A `tokenizer`
        object (e.g. the harmony one) replaces the folder's."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = "cuda" if torch.cuda.is_available() else "cpu"
        lm: Any = AutoModelForCausalLM.from_pretrained(model, dtype=getattr(torch, dtype))
        lm.to(device).eval()
        return cls(lm, tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(model), threads)

    @classmethod
    async def create(
        cls, model: str, dtype: str = "float32", threads: int | None = None, tokenizer: Any = None
    ) -> HFBackend:
        return await asyncio.to_thread(cls.load, model, dtype, threads, tokenizer)

    def _run(self, prompt_ids: list[int], params: GenParams, req: _Request, emit: Callable[[Chunk], None]) -> None:
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)
        with self._lock, torch.no_grad():
            gen = torch.Generator(device=self.model.device)
            gen.manual_seed(params.seed if params.seed is not None else torch.seed())
            tracker = _TextTracker(self.tokenizer, params.stop)
            inputs = torch.tensor([prompt_ids], device=self.model.device)
            past = None
            for _ in range(params.max_tokens):
                if req.cancel.is_set():
                    emit(Chunk("", (), finish_reason="abort"))
                    return
                out = self.model(input_ids=inputs, past_key_values=past, use_cache=True)
                past = out.past_key_values
                logits = out.logits[0, -1]
                token = _pick(logits, params, gen)
                lps = (_top_logprobs(logits, params.logprobs),) if params.logprobs else None
                if token in self._eos or token in params.stop_token_ids:
                    emit(Chunk("", (token,), finish_reason="stop", logprobs=lps))
                    return
                text, stop = tracker.add(token)
                if stop is not None:
                    emit(Chunk(text, (token,), finish_reason="stop", stop_reason=stop, logprobs=lps))
                    return
                emit(Chunk(text, (token,), logprobs=lps))
                inputs = torch.tensor([[token]], device=self.model.device)
            emit(Chunk("", (), finish_reason="length"))

    async def stream(self, prompt_ids: Sequence[int], params: GenParams, request_id: str) -> AsyncIterator[Chunk]:
        """Yield chunks of one request; leaving the loop early aborts it."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Chunk | BaseException] = asyncio.Queue()
        req = self._requests[request_id] = _Request()
        ids = [int(i) for i in prompt_ids]

        def emit(item: Chunk | BaseException) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def work() -> None:
            try:
                self._run(ids, params, req, emit)
            except BaseException as e:  # hand the error to the consumer
                emit(e)

        thread = threading.Thread(target=work, name=f"hf-{request_id}", daemon=True)
        thread.start()
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if item.finish_reason is not None:
                    return
        finally:
            req.cancel.set()
            self._requests.pop(request_id, None)

    async def abort(self, request_id: str) -> None:
        req = self._requests.get(request_id)
        if req is not None:
            req.cancel.set()

    async def close(self) -> None:
        for req in self._requests.values():
            req.cancel.set()
