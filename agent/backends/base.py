"""The one narrow interface every generation backend implements.

A backend streams completions for a prompt given as token ids (so continuation after a tool
call never re-tokenises earlier text), honours stop strings (the matched stop string is
included in the returned text), and can abort a request. It does not know about prompts,
tools or votes. Implementations: `vllm_engine.VLLMEngineBackend` (in-process AsyncLLM),
`server.ServerBackend` (OpenAI-compatible /v1/completions), `hf.HFBackend` (transformers).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class GenParams:
    """Sampling parameters for one request."""

    max_tokens: int
    temperature: float = 0.6
    top_p: float = 0.95
    seed: int | None = None
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False  # generate exactly max_tokens (benchmarks); backends that cannot, ignore it
    min_p: float = 0.0  # drop tokens below min_p x the top token's probability (0: off)
    stop_token_ids: tuple[int, ...] = ()  # stop on these ids (harmony's <|call|>, <|return|>)
    logprobs: int | None = None  # return the top-k logprobs of every generated token (Chunk.logprobs)
    # Per-request settings for the engine's custom logits processors (vLLM `extra_args`, the
    # server's `vllm_xargs`), e.g. the thought-switching penalty; None: none.
    extra_args: tuple[tuple[str, Any], ...] | None = None


@dataclass(frozen=True)
class Chunk:
    """An increment of a streamed completion.

    `text` and `token_ids` are new since the previous chunk. The last chunk of a request has
    `finish_reason` set: "stop" (end of sequence or a stop string; `stop_reason` is the matched
    stop string, or None for end of sequence), "length" (max_tokens) or "abort".
    `token_ids` may include a trailing end-of-sequence id that has no text.
    """

    text: str
    token_ids: tuple[int, ...]
    finish_reason: str | None = None
    stop_reason: str | None = None
    # with GenParams.logprobs=k: per new token, the top-k (token id, logprob) pairs
    logprobs: tuple[tuple[tuple[int, float], ...], ...] | None = None


@runtime_checkable
class Backend(Protocol):
    """Streams completions. `tokenizer` is a Hugging Face tokenizer used for chat templates."""

    name: str
    tokenizer: Any

    def stream(self, prompt_ids: Sequence[int], params: GenParams, request_id: str) -> AsyncIterator[Chunk]:
        """Start a request and yield its chunks. Breaking out of the iteration aborts it."""
        ...

    async def abort(self, request_id: str) -> None:
        """Stop a running request now; a request that already finished is ignored."""
        ...

    async def close(self) -> None:
        """Release the engine or connection."""
        ...
