"""One vote: the stored run's metrics and report agree with the answer the agent gave.

Real runs of the batch runner (real agent.solve and agent.rollout over the scripted backend)
are stored with early stops that abort samples and with tied votes; read back, every problem's
vote recomputed by `evals.metrics.revote` (agent.vote over the voting samples in completion
order, the run's weight scheme) equals the agent's recorded answer, and the report's
"agent answer" column shows that answer.
"""

from __future__ import annotations

from pathlib import Path

from agent.types import Problem
from evals.fakes import FakeBackend, FakePool
from evals.metrics import problem_rows, revote, run_metrics
from evals.report import markdown_report
from evals.runner import RunConfig, open_store, run_problems
from evals.store import read_run

PROBLEMS = [Problem(f"q{i}", f"Question {i}?", str(11 + i % 3)) for i in range(10)]


async def _run(run_dir: Path, cfg: RunConfig, answers: list[int], delay: float) -> None:
    store = open_store(str(run_dir), PROBLEMS, cfg, "test")
    try:
        await run_problems(PROBLEMS, [FakeBackend(answers=answers, delay=delay)], FakePool(), cfg, store)
    finally:
        store.close()


def _check_agreement(run_dir: Path) -> tuple[int, int]:
    """(problems with a tie at the top, aborted samples); asserts the agent's answer is everywhere."""
    data = read_run(run_dir)
    assert len(data.problems) == len(PROBLEMS)
    md = markdown_report(data, run_metrics(data))
    ties = 0
    for row in problem_rows(data):
        rec = data.problems[row.problem_id]
        assert revote(data, row.problem_id) == rec.answer, row.problem_id
        assert row.voted == rec.answer
        assert f"| {row.problem_id} | {row.reference} | {rec.answer} |" in md
        top = rec.tally[:2]
        ties += len(top) == 2 and abs(top[0][1] - top[1][1]) < 1e-9
    aborted = sum(r.finish == "aborted" for r in data.all_samples())
    g = run_metrics(data).group("all")
    assert g is not None and g.voting == g.samples - aborted - g.errors and g.aborted == aborted
    return ties, aborted


async def test_tied_votes_agree(tmp_path: Path) -> None:
    cfg = RunConfig(samples=4, tir_ratio=0.5, max_tokens=400, concurrency=2, weight="tir_clean")
    await _run(tmp_path, cfg, [11, 12], 0.0)
    ties, _ = _check_agreement(tmp_path)
    assert ties >= 1  # the tie-break (weight, count, completion order) decided at least one problem


async def test_early_stops_with_aborts_agree(tmp_path: Path) -> None:
    cfg = RunConfig(samples=6, tir_ratio=0.5, max_tokens=400, concurrency=2, policy="agree:2")
    await _run(tmp_path, cfg, [11, 12, 13], 0.002)
    _, aborted = _check_agreement(tmp_path)
    assert aborted >= 1
