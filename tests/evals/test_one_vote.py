"""One vote: the stored run's metrics and report agree with the answer the agent gave.

Real runs of the batch runner (real agent.solve and agent.rollout over the scripted backend)
are stored with early stops that abort samples and with tied votes; read back, every problem's
vote recomputed by `evals.metrics.revote` (agent.vote over the voting samples in completion
order, the run's weight scheme) equals the agent's recorded answer, and the report's
"agent answer" column shows that answer.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from agent.config import RolloutConfig, SolveConfig
from agent.types import Problem
from agent.vote import vote
from evals.metrics import problem_rows, revote, run_metrics
from evals.report import markdown_report
from evals.runner import RunConfig, open_store, run_problems
from evals.store import read_run
from tests.fakes import FakeBackend, FakePool

PROBLEMS = [Problem(f"q{i}", f"Question {i}?", str(11 + i % 3)) for i in range(16)]


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
    solve = SolveConfig(samples=4, tir_ratio=0.5, rollout=RolloutConfig(max_tokens=400), weight="tir_clean")
    cfg = RunConfig(solve=solve, concurrency=2)
    await _run(tmp_path, cfg, [11, 12], 0.0)
    ties, _ = _check_agreement(tmp_path)
    assert ties >= 1  # the tie-break (weight, count, completion order) decided at least one problem


async def test_early_stops_with_aborts_agree(tmp_path: Path) -> None:
    solve = SolveConfig(samples=6, tir_ratio=0.5, rollout=RolloutConfig(max_tokens=400), policy="agree:2")
    cfg = RunConfig(solve=solve, concurrency=2)
    await _run(tmp_path, cfg, [11, 12, 13], 0.002)
    _, aborted = _check_agreement(tmp_path)
    assert aborted >= 1
    data = read_run(tmp_path)
    # aborted samples hold partial answers; counting them as voters would change some answers
    assert any(r.answer is not None for r in data.all_samples() if r.finish == "aborted")
    as_voters = {pid: vote([replace(r.trace, finish="answer") for r in recs.values()]).answer
                 for pid, recs in data.samples.items()}
    assert any(as_voters[pid] != rec.answer for pid, rec in data.problems.items())
