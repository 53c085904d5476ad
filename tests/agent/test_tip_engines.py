"""TIP on the real default model: the in-process vLLM engine (shared session engine, which
registers the processor), the shared vLLM server (started with --logits-processors) through
`vllm_xargs`, and the transformers backend.

Each engine: a huge alpha with a very long beta removes a common word from the output; alpha=0
gives exactly the plain output for the same seed; with a short beta the word comes back only
after the window, which restarts at each occurrence. The word is " a" (all its spellings; the plain output opens "Once upon a time, in a"):
common enough that the plain output has it several times, close together.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from agent.backends.base import GenParams
from agent.tip import TipSettings, request_args, switch_token_ids
from tests.agent.test_backends_vllm import chat_ids, collect, joined

pytestmark = [pytest.mark.slow]

PROMPT = "Write a long story about the sea, the sun and the old man who lived by the shore."
WORD = "a"
HUGE = 1e4
BETA = 8


def _params(n: int, settings: TipSettings | None, ids: tuple[int, ...], seed: int | None = None,
            temperature: float = 0.0) -> GenParams:
    extra = request_args(settings, ids) if settings is not None else None
    return GenParams(max_tokens=n, temperature=temperature, seed=seed, extra_args=extra)


def positions(tokens: list[int], ids: tuple[int, ...]) -> list[int]:
    return [i for i, t in enumerate(tokens) if t in ids]


async def _run(backend: Any, n: int, settings: TipSettings | None, rid: str, **kw: Any) -> list[int]:
    tok = backend.tokenizer
    ids = switch_token_ids(tok, [WORD])
    return joined(await collect(backend, chat_ids(tok, PROMPT), _params(n, settings, ids, **kw), rid))[1]


async def check_tip(backend: Any, tag: str, n: int = 48) -> None:
    """The three properties of the module docstring, on one backend (the greedy requests run
    concurrently, sharing the engine's batch; the two seeded ones run alone, one after the other,
    so batch composition cannot change their numerics)."""
    ids = switch_token_ids(backend.tokenizer, [WORD])
    plain, banned, windowed = await asyncio.gather(
        _run(backend, n, None, f"{tag}-plain"),
        _run(backend, n, TipSettings(HUGE, 10**6, (WORD,)), f"{tag}-ban"),
        _run(backend, n, TipSettings(HUGE, BETA, (WORD,)), f"{tag}-w"),
    )
    sampled = await _run(backend, n, None, f"{tag}-s", seed=7, temperature=0.8)
    zero = await _run(backend, n, TipSettings(0.0, 600, (WORD,)), f"{tag}-z", seed=7, temperature=0.8)
    where = positions(plain, ids)
    assert len(where) >= 3, "precondition: the plain output uses the word"
    gaps = [b - a for a, b in zip(where, where[1:], strict=False)]
    assert where[0] < BETA or min(gaps) < BETA, "precondition: the plain output has it within a window"
    assert positions(banned, ids) == [] and len(banned) >= n // 2
    assert zero == sampled
    got = positions(windowed, ids)
    assert len(got) >= 2, "the word comes back after the window, more than once"
    assert got[0] >= BETA and all(b - a >= BETA for a, b in zip(got, got[1:], strict=False))


@pytest.mark.engine
async def test_vllm_engine_tip(vllm_backend: Any) -> None:
    assert vllm_backend.tip
    await check_tip(vllm_backend, "v-tip")


@pytest.mark.engine
async def test_vllm_plain_request_untouched_by_a_tip_neighbour(vllm_backend: Any) -> None:
    ids = switch_token_ids(vllm_backend.tokenizer, [WORD])
    calm = await asyncio.gather(  # the same batch shape, the neighbour's penalty 0
        _run(vllm_backend, 32, None, "v-calm-plain"),
        _run(vllm_backend, 32, TipSettings(0.0, 10**6, (WORD,)), "v-calm-tip"),
    )
    hard = await asyncio.gather(
        _run(vllm_backend, 32, None, "v-mix-plain"),
        _run(vllm_backend, 32, TipSettings(HUGE, 10**6, (WORD,)), "v-mix-tip"),
    )
    assert hard[0] == calm[0]  # the plain request is untouched by its TIP neighbour
    assert positions(hard[1], ids) == [] and positions(calm[1], ids)


@pytest.mark.server
async def test_server_tip_through_vllm_xargs(server_url: str, default_model_dir: Path) -> None:
    from agent.backends.server import ServerBackend

    backend = await ServerBackend.open(server_url, model=str(default_model_dir))
    try:
        await check_tip(backend, "s-tip")
    finally:
        await backend.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def hf(default_model_dir: Path) -> AsyncIterator[Any]:
    from agent.backends.hf import HFBackend

    backend = await HFBackend.create(str(default_model_dir), threads=1)
    yield backend
    await backend.close()


async def test_hf_backend_tip(hf: Any) -> None:
    await check_tip(hf, "h-tip", n=40)
