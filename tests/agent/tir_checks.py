"""One check shared by the real-server tests: the TIR loop with real code cells and a vote."""

from __future__ import annotations

from typing import Any

from agent.config import RolloutConfig, SolveConfig
from agent.solve import solve
from agent.types import Problem

PROBLEM = Problem(id="cubes", text="What is the sum of the cubes of the integers from 1 to 20?", answer="44100")


async def check_tir_and_vote(backend: Any, pool: Any, samples: int = 3, seed: int = 3) -> Any:
    """Run TIR samples; at least one runs a real cell whose output is fed back; none ends in error."""
    roll = RolloutConfig(max_tokens=200, temperature=0.8, cell_timeout=5.0)
    res = await solve(PROBLEM, backend, pool, SolveConfig(samples=samples, tir_ratio=1.0, seed=seed, rollout=roll))
    assert [t.finish for t in res.traces if t.finish == "error"] == [], [t.error for t in res.traces]
    ran = [t for t in res.traces if t.tool_calls > 0]
    assert ran, "the few-shot prompt should make the small model write code"
    for t in ran:
        kinds = [s.kind for s in t.steps]
        i = kinds.index("code")
        assert t.steps[i].text.rstrip().endswith("```")  # the closing fence is in the trace
        assert kinds[i + 1] == "output" and t.steps[i + 1].status in ("ok", "error", "timeout")
    answered = [t for t in res.traces if t.answer is not None and t.answer.value is not None]
    assert res.vote.voters == len(answered)  # every answered sample voted
    assert res.stop_reason == "all_done"
    return res
