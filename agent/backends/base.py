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


class BackendError(RuntimeError):
    """The backend itself failed (server gone or refusing, engine dead): not one sample's fault.

    The TIR loop lets it through, so the problem stops with one clear line (or, with several
    servers, the work moves to another); `source` names the server or engine."""

    def __init__(self, message: str, source: str = "") -> None:
        super().__init__(message)
        self.source = source


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


def eos_ids_of(tokenizer: Any, generation_config: Any = None) -> tuple[int, ...]:
    """End-of-sequence ids: the generation config's (often several) and the tokenizer's, sorted."""
    found: set[int] = set()
    for ids in (getattr(generation_config, "eos_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        if ids is not None:
            found.update(int(i) for i in (ids if isinstance(ids, (list, tuple)) else [ids]))
    return tuple(sorted(found))


@runtime_checkable
class Backend(Protocol):
    """Streams completions. `tokenizer` is a Hugging Face tokenizer used for chat templates;
    `eos_token_ids` end a generation; `max_model_len` is the context window (None: unknown)."""

    name: str
    tokenizer: Any

    @property
    def eos_token_ids(self) -> Sequence[int]: ...

    @property
    def max_model_len(self) -> int | None: ...

    def stream(self, prompt_ids: Sequence[int], params: GenParams, request_id: str) -> AsyncIterator[Chunk]:
        """Start a request and yield its chunks. Breaking out of the iteration aborts it."""
        ...

    async def abort(self, request_id: str) -> None:
        """Stop a running request now; a request that already finished is ignored."""
        ...

    async def close(self) -> None:
        """Release the engine or connection."""
        ...
