"""The in-process vLLM engine backend on the real default model (shared session engine)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agent.backends.base import Backend, Chunk, GenParams

pytestmark = [pytest.mark.engine, pytest.mark.slow]

CODE_PROMPT = "Write a python program that prints the sum of 1..10."
LONG_PROMPT = "Write a long story about a dragon who learns mathematics."


def chat_ids(tokenizer: Any, text: str) -> list[int]:
    ids = tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                        return_dict=False)
    return [int(i) for i in ids]


async def collect(backend: Backend, ids: list[int], params: GenParams, rid: str) -> list[Chunk]:
    return [c async for c in backend.stream(ids, params, rid)]


def joined(chunks: list[Chunk]) -> tuple[str, list[int]]:
    return "".join(c.text for c in chunks), [t for c in chunks for t in c.token_ids]


async def test_streams_text_and_ids(vllm_backend: Any) -> None:
    assert isinstance(vllm_backend, Backend)
    ids = chat_ids(vllm_backend.tokenizer, CODE_PROMPT)
    chunks = await collect(vllm_backend, ids, GenParams(max_tokens=40, temperature=0), "v-stream")
    text, toks = joined(chunks)
    assert len(chunks) > 1 and all(c.finish_reason is None for c in chunks[:-1])
    assert chunks[-1].finish_reason == "length" and len(toks) == 40
    assert text.startswith("```python")
    assert vllm_backend.tokenizer.decode(toks, skip_special_tokens=True) == text


async def test_greedy_continuation_from_ids_matches_one_shot(vllm_backend: Any) -> None:
    tok = vllm_backend.tokenizer
    ids = chat_ids(tok, CODE_PROMPT)
    one_shot = joined(await collect(vllm_backend, ids, GenParams(max_tokens=80, temperature=0), "v-one"))[1]
    if one_shot and one_shot[-1] == tok.eos_token_id:
        one_shot = one_shot[:-1]  # EOS has no text: strip it before continuing
    assert len(one_shot) > 50
    for k in (7, 40):
        rest = GenParams(max_tokens=len(one_shot) - k, temperature=0)
        cont = joined(await collect(vllm_backend, ids + one_shot[:k], rest, f"v-cont-{k}"))[1]
        assert cont[: len(one_shot) - k] == one_shot[k:], f"continuation from token {k} drifted"


async def test_stop_string_is_included_in_text(vllm_backend: Any) -> None:
    ids = chat_ids(vllm_backend.tokenizer, CODE_PROMPT)
    params = GenParams(max_tokens=80, temperature=0, stop=("print(",))
    chunks = await collect(vllm_backend, ids, params, "v-stop")
    text, _ = joined(chunks)
    assert text.endswith("print(")
    assert chunks[-1].finish_reason == "stop" and chunks[-1].stop_reason == "print("
    assert text.count("print(") == 1


async def test_abort_one_request_leaves_the_others_running(vllm_backend: Any) -> None:
    ids = chat_ids(vllm_backend.tokenizer, LONG_PROMPT)
    params = GenParams(max_tokens=120, temperature=0.8, seed=11)
    got: dict[str, list[Chunk]] = {"v-a": [], "v-b": []}
    started = asyncio.Event()

    async def run(rid: str) -> None:
        async for c in vllm_backend.stream(ids, params, rid):
            got[rid].append(c)
            if len(got[rid]) >= 5:
                started.set()

    tasks = [asyncio.create_task(run(rid)) for rid in got]
    await started.wait()
    await vllm_backend.abort("v-a")
    at_abort = len(got["v-b"])
    await asyncio.gather(*tasks)
    assert got["v-a"][-1].finish_reason == "abort"
    assert len(got["v-a"]) < 120
    assert got["v-b"][-1].finish_reason in ("stop", "length")
    assert len(got["v-b"]) > at_abort  # it went on after the abort


async def test_breaking_out_of_stream_aborts_in_engine(vllm_backend: Any) -> None:
    ids = chat_ids(vllm_backend.tokenizer, LONG_PROMPT)
    n = 0
    async for _ in vllm_backend.stream(ids, GenParams(max_tokens=500, temperature=0.8, seed=2), "v-break"):
        n += 1
        if n == 3:
            break
    await asyncio.sleep(0.2)  # let the generator's finaliser run
    assert vllm_backend.engine.output_processor.get_num_unfinished_requests() == 0


async def test_seed_makes_sampling_repeatable(vllm_backend: Any) -> None:
    ids = chat_ids(vllm_backend.tokenizer, LONG_PROMPT)

    async def sample(seed: int, rid: str) -> list[int]:
        return joined(await collect(vllm_backend, ids, GenParams(max_tokens=24, temperature=1.0, seed=seed), rid))[1]

    a, b, c = await asyncio.gather(sample(5, "v-s1"), sample(5, "v-s2"), sample(6, "v-s3"))
    assert a == b
    assert a != c


async def test_prompt_at_the_context_limit_finishes_with_length(vllm_backend: Any) -> None:
    chunks = await collect(vllm_backend, [1] * vllm_backend.max_model_len, GenParams(max_tokens=5), "v-long")
    assert chunks[-1].finish_reason == "length"
