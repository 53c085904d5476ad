"""solve(): concurrency, votes, policy stops, resume via skip, time budgets and their revision
(logic on the scripted backend; test_agent_real.py runs the real engine)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from agent.backends.base import BackendError, GenParams
from agent.config import RolloutConfig, SolveConfig
from agent.policy import make_policy
from agent.solve import plan_modes, sample_seed, solve
from agent.types import Problem, Trace
from tests.fakes import FakePool, ScriptedBackend

P = Problem(id="p", text="2+3?", answer="5")


def answer_by_seed(prompt: str, g: GenParams) -> str:
    """Sample answers 5 unless its seed is odd, then 7 (a deterministic mix of answers)."""
    return f"\\boxed{{{7 if (g.seed or 0) % 2 else 5}}}<eos>"


def test_plan_modes_and_seeds():
    assert plan_modes(4, 0.5) == ["cot", "tir", "cot", "tir"]
    assert plan_modes(3, 1.0) == ["tir"] * 3 and plan_modes(3, 0.0) == ["cot"] * 3
    assert plan_modes(8, 0.25).count("tir") == 2
    seeds = [sample_seed(0, "p", i) for i in range(50)]
    assert len(set(seeds)) == 50 and seeds == [sample_seed(0, "p", i) for i in range(50)]
    assert sample_seed(1, "p", 0) != sample_seed(0, "p", 0) != sample_seed(0, "q", 0)


async def test_all_samples_vote():
    seen: list[int] = []
    cfg = SolveConfig(samples=6, tir_ratio=0.5, seed=3)
    res = await solve(P, ScriptedBackend(answer_by_seed), FakePool(), cfg, on_trace=lambda t: seen.append(t.index))
    assert sorted(seen) == list(range(6)) and res.stop_reason == "all_done"
    values = [t.answer.value for t in res.traces if t.answer]
    assert res.vote.voters == 6 and res.answer == max(set(values), key=values.count)
    assert res.correct == (res.answer == 5)
    assert [t.mode for t in res.traces] == plan_modes(6, 0.5)


async def test_policy_stop_cancels_the_rest():
    be = ScriptedBackend(lambda p, g: "\\boxed{5}" if g.seed is not None and g.seed % 3 else "x" * 2000, delay=0.002)
    cfg = SolveConfig(samples=8, tir_ratio=0.0, seed=1, rollout=RolloutConfig(max_tokens=5000))
    res = await solve(P, be, None, cfg, policy=make_policy("agree:2"))
    assert res.stop_reason != "all_done" and res.answer == 5
    unfinished = [t for t in res.traces if t.finish == "aborted"]
    assert all(t.tokens < 2000 for t in unfinished) and len(be.aborted) >= len(unfinished)


async def test_concurrency_limit_and_unstarted_samples():
    cfg = SolveConfig(samples=8, tir_ratio=0.0, seed=2, concurrency=1)
    be = ScriptedBackend(lambda p, g: "\\boxed{5}<eos>", delay=0.001)
    res = await solve(P, be, None, cfg, policy=make_policy("agree:3"))
    # the sample that took the freed slot may have started (and was aborted); the rest never did
    assert [t.finish for t in res.traces][:3] == ["answer"] * 3 and len(be.requests) <= 4
    assert len(res.traces) == len(be.requests) and all(t.finish == "aborted" for t in res.traces[3:])


async def test_skip_resumes_without_rerunning():
    be = ScriptedBackend(answer_by_seed)
    cfg = SolveConfig(samples=4, tir_ratio=0.0, seed=5)
    full = await solve(P, be, None, cfg)
    be2 = ScriptedBackend(answer_by_seed)
    new: list[Trace] = []
    again = await solve(P, be2, None, cfg, skip=full.traces[:2], on_trace=new.append)
    assert sorted(t.index for t in new) == [2, 3] and len(be2.requests) == 2
    assert [t.completion for t in again.traces] == [t.completion for t in full.traces]
    assert again.vote == full.vote


async def test_time_budget_and_revision():
    slow = ScriptedBackend(lambda p, g: "z" * 10_000, delay=0.01)
    cfg = SolveConfig(samples=2, tir_ratio=0.0, time_budget=0.3, rollout=RolloutConfig(max_tokens=20_000))
    res = await solve(P, slow, None, cfg)
    assert res.stop_reason == "time" and all(t.finish == "time" for t in res.traces)
    assert res.seconds < 2.0
    calls: list[float] = []

    def revise(budget: float, finished: Sequence[Trace], total: int, elapsed: float) -> float:
        calls.append(budget)
        return 0.9 if budget < 0.9 else budget

    res2 = await solve(P, ScriptedBackend(lambda p, g: "z" * 10_000, delay=0.01), None, cfg, revise=revise)
    assert calls and res2.stop_reason == "time" and res2.seconds >= 0.85
    assert all(t.finish == "time" for t in res2.traces)


async def test_cancelling_solve_cancels_samples():
    be = ScriptedBackend(lambda p, g: "w" * 5000, delay=0.01)
    task = asyncio.create_task(solve(P, be, None, SolveConfig(samples=3, tir_ratio=0.0)))
    await asyncio.sleep(0.1)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    await asyncio.sleep(0.05)
    assert len(be.requests) == 3 and be.open_streams == 0  # all three started, and every stream closed
    streamed = be.chunks
    await asyncio.sleep(0.1)
    assert be.chunks == streamed < 3 * 5000 // 4  # nothing streams after the cancel


async def test_backend_failure_stops_the_problem_and_keeps_finished_samples():
    def reply(p: str, g: GenParams) -> str:
        if (g.seed or 0) % 2:
            raise BackendError("server gone", "s")
        return "\\boxed{7}<eos>"

    seen: list[Trace] = []
    be = ScriptedBackend(reply, delay=0.001)
    with pytest.raises(BackendError, match="server gone"):
        await solve(P, be, None, SolveConfig(samples=6, tir_ratio=0.0, warm_prefix=False), on_trace=seen.append)
    await asyncio.sleep(0.05)
    assert be.open_streams == 0 and all(t.finish == "answer" for t in seen)


async def test_followers_start_after_the_leader_prefilled():
    starts: list[tuple[str, int]] = []

    def reply(prompt: str, g: GenParams) -> str:
        starts.append(("req", len(starts)))
        return "\\boxed{5}<eos>"

    be = ScriptedBackend(reply, delay=0.001)
    order: list[int] = []
    cfg = SolveConfig(samples=5, tir_ratio=0.2, seed=0)  # modes: cot cot cot cot tir
    res = await solve(P, be, FakePool(), cfg, on_event=lambda e: order.append(e.index) if e.kind == "start" else None)
    assert len(res.traces) == 5 and all(t.finish == "answer" for t in res.traces)
    # the lone TIR sample and the first CoT sample start first; the other CoT samples after
    assert set(order[:2]) == {0, 4} and sorted(order[2:]) == [1, 2, 3]
    off = await solve(P, ScriptedBackend(reply), FakePool(), SolveConfig(samples=5, tir_ratio=0.2, warm_prefix=False))
    assert len(off.traces) == 5
