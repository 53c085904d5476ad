"""The batch runner with the real solve/rollout over a scripted backend: storing every sample,
resuming after a crash without loss or duplicates, several backends, Kaggle mode, config identity."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agent.config import RolloutConfig, SolveConfig
from agent.errors import UserError
from agent.solve import solve
from agent.types import Problem
from evals.metrics import run_metrics
from evals.runner import RunConfig, kaggle_order, open_store, run_problems
from evals.store import RECORDS, read_run
from tests.fakes import FakeBackend, FakePool

PROBLEMS = [Problem(f"p{i}", f"Problem {i}?", str(a)) for i, a in enumerate([42, 7, 42, 5, 42])]
CFG = RunConfig(solve=SolveConfig(samples=4, tir_ratio=0.5, rollout=RolloutConfig(max_tokens=400)), concurrency=2)


async def _run(run_dir: Path, backends: list[FakeBackend] | None = None, cfg: RunConfig = CFG,
               problems: list[Problem] = PROBLEMS, **kw: Any) -> None:
    store = open_store(str(run_dir), problems, cfg, "test")
    try:
        await run_problems(problems, backends or [FakeBackend(answers=[42, 7, 42])], FakePool(), cfg, store, **kw)
    finally:
        store.close()


def _key_view(run_dir: Path) -> dict[tuple[str, int], tuple]:
    data = read_run(run_dir)
    return {(r.problem_id, r.index): (r.seed, r.mode, r.answer, r.correct, r.tokens, r.trace.completion)
            for r in data.all_samples()}


async def test_every_sample_stored_once(tmp_path: Path) -> None:
    await _run(tmp_path)
    data = read_run(tmp_path)
    assert len(data.problems) == 5
    assert sorted(_key_view(tmp_path)) == sorted((p.id, i) for p in PROBLEMS for i in range(4))
    lines = (tmp_path / RECORDS).read_text().splitlines()
    assert len(lines) == 5 * 4 + 5
    modes = [r.mode for r in data.all_samples()]
    assert modes.count("tir") == modes.count("cot") == 10
    assert all(r.tool_statuses == ("ok",) for r in data.all_samples() if r.mode == "tir")
    m = run_metrics(data)
    g = m.group("all")
    assert g is not None and g.samples == 20 and 0 < g.pass1 < 1


async def test_resume_after_crash_matches_uninterrupted_run(tmp_path: Path) -> None:
    full = tmp_path / "full"
    await _run(full)
    # a crash after 9 records, in the middle of writing the 10th
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    shutil.copy(full / "manifest.json", crashed / "manifest.json")
    lines = (full / RECORDS).read_bytes().split(b"\n")
    (crashed / RECORDS).write_bytes(b"\n".join(lines[:9]) + b"\n" + lines[9][:30])
    before = _key_view(crashed)
    assert 0 < len(before) < 20
    backend = FakeBackend(answers=[42, 7, 42])
    await _run(crashed, [backend])
    assert _key_view(crashed) == _key_view(full)
    # stored samples were not generated again (each sample takes 1 request, TIR ones 2)
    assert len(backend.requests) < 30
    text = (crashed / RECORDS).read_text()
    assert text.endswith("\n") and len(text.splitlines()) == 25
    def untimed(d: Path) -> list:
        return [replace(g, mean_seconds=0.0) for g in run_metrics(read_run(d)).groups]

    assert untimed(crashed) == untimed(full)  # the same summary, wall times aside


async def test_problems_spread_over_backends(tmp_path: Path) -> None:
    a, b = FakeBackend(answers=[42], delay=0.001), FakeBackend(answers=[42], delay=0.001)
    await _run(tmp_path, [a, b], RunConfig(solve=SolveConfig(samples=2, tir_ratio=0.0, rollout=RolloutConfig(max_tokens=400)), concurrency=1))
    assert a.requests and b.requests
    assert len(a.requests) + len(b.requests) == 10


async def test_other_config_same_dir_refused(tmp_path: Path) -> None:
    await _run(tmp_path, cfg=RunConfig(solve=SolveConfig(samples=2, tir_ratio=0.0, rollout=RolloutConfig(max_tokens=400))))
    with pytest.raises(UserError, match="another config"):
        open_store(str(tmp_path), PROBLEMS, RunConfig(solve=SolveConfig(samples=3, tir_ratio=0.0, rollout=RolloutConfig(max_tokens=400))), "test")
    with pytest.raises(UserError, match="another config.*problem"):
        open_store(str(tmp_path), PROBLEMS[:2], RunConfig(solve=SolveConfig(samples=2, tir_ratio=0.0, rollout=RolloutConfig(max_tokens=400))), "test")


async def test_kaggle_order_budget_and_no_time(tmp_path: Path) -> None:
    cfg = RunConfig(solve=SolveConfig(samples=2, tir_ratio=0.0, rollout=RolloutConfig(max_tokens=400)), kaggle=True, time_budget=3600.0, scheduler="flat")
    await _run(tmp_path, cfg=cfg)
    data = read_run(tmp_path)
    served = [r.problem.id for r in sorted(data.problems.values(), key=lambda r: r.position)]
    assert served == [p.id for p in kaggle_order(PROBLEMS, 0)]
    assert served != [p.id for p in PROBLEMS]  # shuffled (seeded)
    assert all(r.time_budget == pytest.approx(720.0) for r in data.problems.values())
    # a budget spent by the first problem: the others are recorded unanswered
    slow = tmp_path / "slow"
    cfg2 = RunConfig(solve=SolveConfig(samples=1, tir_ratio=0.0, rollout=RolloutConfig(max_tokens=400)), kaggle=True, time_budget=0.05, scheduler="flat")

    async def overrunning_solve(*args: Any, **kwargs: Any) -> Any:
        result = await solve(*args, **kwargs)
        await asyncio.sleep(0.06)  # the problem overruns its budget (e.g. a cell still finishing)
        return result

    await _run(slow, [FakeBackend(answers=[42], pad=400, chunk=1, delay=0.002)], cfg=cfg2,
               solve_fn=overrunning_solve)
    recs = sorted(read_run(slow).problems.values(), key=lambda r: r.position)
    reasons = [r.stop_reason for r in recs]
    assert len(recs) == 5 and reasons[0] == "time" and reasons[-1] == "no_time"
    assert set(reasons) == {"time", "no_time"}
    assert all(r.time_budget is not None and r.time_budget <= 0.05 for r in recs)
    assert all(r.answer is None and r.correct is False for r in recs if r.stop_reason == "no_time")


def test_bench_runs_small(capsys: pytest.CaptureFixture[str]) -> None:
    from evals.bench import main

    assert main(["--records", "5", "--problems", "2", "--samples", "2"]) == 0
    out = capsys.readouterr().out
    assert "records/s" in out and "ratio runner/alone" in out


def test_progress_line_counts_and_eta() -> None:
    import io

    from evals.progress import Progress

    buf = io.StringIO()
    pr = Progress(8, 2, stream=buf, every=0.0)
    pr.resumed(2, 1, 0, 0)
    pr.sample_done(True)
    pr.sample_done(False)
    assert "samples 4/8 | pass@1 0.500 | problems 0/2" in pr.render()
    assert "ETA -" not in pr.render()  # a rate is known after fresh samples
    pr.problem_done(True, unused_samples=2)  # early stop: 2 planned samples never run
    assert "samples 4/6" in pr.render() and "problems 1/2 (voted right 1)" in pr.render()
    pr.close()
    assert buf.getvalue().count("\n") >= 4
