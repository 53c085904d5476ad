"""The context a model really has: the shared engine runs with the default model's own 8192-token
context (no --max-model-len), and a sample is not clipped at 4k (the old default); a context
overflow is its own finish ("context") and, before a problem starts, one clear line."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from agent.backends.base import Chunk, GenParams
from agent.config import RolloutConfig, SolveConfig
from agent.errors import UserError
from agent.rollout import rollout
from agent.solve import check_context
from agent.types import Problem

P = Problem("ctx", "Write the numbers from 1 upwards, one per line, and never stop.")


class NoEOS:
    """The real engine, asked never to stop at end of sequence (so a sample runs to its budget); the
    live text it reports has `\\boxed` defused, so the loop's early answer stop cannot end the sample
    first (the tokens, which the trace is built from, are the engine's own)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.name, self.tokenizer = inner, inner.name, inner.tokenizer
        self.eos_token_ids, self.max_model_len = inner.eos_token_ids, inner.max_model_len

    async def stream(self, prompt_ids: Sequence[int], params: GenParams, request_id: str) -> AsyncIterator[Chunk]:
        async for ch in self.inner.stream(prompt_ids, dataclasses.replace(params, ignore_eos=True), request_id):
            yield dataclasses.replace(ch, text=ch.text.replace("boxed", "b0xed"))

    async def abort(self, request_id: str) -> None:
        await self.inner.abort(request_id)

    async def close(self) -> None:
        pass


@pytest.mark.engine
@pytest.mark.slow
async def test_engine_gets_the_models_own_context_and_a_sample_runs_past_4k(vllm_backend: Any) -> None:
    assert vllm_backend.max_model_len == 8192  # SmolLM2's max_position_embeddings, not 4096
    ids = vllm_backend.tokenizer.encode(" ".join(str(i) for i in range(1, 60)))  # a raw count, no chat turn
    params = GenParams(max_tokens=4600, temperature=0, ignore_eos=True)
    chunks = [c async for c in vllm_backend.stream(ids, params, "ctx-long")]
    assert chunks[-1].finish_reason == "length" and sum(len(c.token_ids) for c in chunks) == 4600


@pytest.mark.engine
@pytest.mark.slow
async def test_context_overflow_is_its_own_finish_and_one_line_up_front(vllm_backend: Any) -> None:
    cfg = SolveConfig(samples=1, tir_ratio=0.0, rollout=RolloutConfig(max_tokens=9000, prompt_family="small"))
    with pytest.raises(UserError, match=r"exceeds the model's context of 8192 tokens; lower --max-tokens"):
        check_context(P, vllm_backend, cfg)
    huge = Problem("huge", "nine " * 9000)
    with pytest.raises(UserError, match="the prompt alone is"):
        check_context(huge, vllm_backend, dataclasses.replace(cfg, rollout=RolloutConfig(max_tokens=10)))
    near = Problem("near", "nine " * 7900)  # leaves a few dozen tokens of context after the prompt
    t = await rollout(near, NoEOS(vllm_backend), None, "cot", RolloutConfig(max_tokens=500, temperature=0,
                                                                            prompt_family="small"))
    assert t.finish == "context" and t.prompt_tokens + t.tokens == 8192 and t.tokens < 500
