"""Shards and merge-runs: split, merge equals an unsharded run (scripted backend and the real
engine), refusals of overlapping or mismatched shards, the CLI's one-line errors."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agent.config import RolloutConfig, SolveConfig
from agent.errors import UserError
from agent.types import Problem
from evals.metrics import run_metrics
from evals.runner import RunConfig, open_store, run_problems
from evals.shards import Shard, merge_runs, parse_shard
from evals.store import read_run
from tests.fakes import FakeBackend, FakePool

PROBLEMS = [Problem(f"p{i}", f"Problem {i}?", str(a)) for i, a in enumerate([42, 7, 42, 5, 42])]
CFG = RunConfig(solve=SolveConfig(samples=3, tir_ratio=0.5, rollout=RolloutConfig(max_tokens=400)), concurrency=2)


async def _run(run_dir: Path, backend: Any, pool: Any, cfg: RunConfig = CFG, shard: Shard | None = None,
               problems: list[Problem] = PROBLEMS) -> None:
    store = open_store(str(run_dir), problems, cfg, "test", shard=shard)
    mine = problems if shard is None else shard.select(problems)
    try:
        await run_problems(mine, [backend], pool, cfg, store)
    finally:
        store.close()


def view(run_dir: Path) -> dict[tuple[str, int], tuple]:
    """Everything about a sample but wall-clock times."""
    return {(r.problem_id, r.index): (r.seed, r.mode, r.answer, r.correct, r.tokens, r.finish,
                                      tuple((s.kind, s.text, s.status) for s in r.trace.steps))
            for r in read_run(run_dir).all_samples()}


def test_parse_and_split() -> None:
    assert parse_shard("2/3") == Shard(2, 3) and parse_shard(None) is None
    assert [p.id for p in Shard(2, 3).select(PROBLEMS)] == ["p1", "p4"]
    assert sorted(p.id for k in (1, 2, 3) for p in Shard(k, 3).select(PROBLEMS)) == [p.id for p in PROBLEMS]
    for bad in ("0/2", "3/2", "2", "a/b"):
        with pytest.raises(UserError, match="expected K/N"):
            parse_shard(bad)


async def test_merged_shards_equal_the_unsharded_run(tmp_path: Path) -> None:
    for k in (1, 2):
        await _run(tmp_path / f"s{k}", FakeBackend(answers=[42, 7, 42]), FakePool(), shard=Shard(k, 2))
    await _run(tmp_path / "whole", FakeBackend(answers=[42, 7, 42]), FakePool())
    rep = merge_runs([tmp_path / "s2", tmp_path / "s1"], tmp_path / "merged")
    assert rep.missing == () and rep.finished == 5 and rep.samples == 15
    assert view(tmp_path / "merged") == view(tmp_path / "whole")
    merged, whole = read_run(tmp_path / "merged"), read_run(tmp_path / "whole")
    assert merged.manifest["config"] == whole.manifest["config"]
    assert merged.manifest["problems"] == whole.manifest["problems"]
    m, w = run_metrics(merged), run_metrics(whole)
    untimed = [tuple(replace(g, mean_seconds=0.0) for g in x.groups) for x in (m, w)]
    assert untimed[0] == untimed[1] and (m.problems_total, m.voted_correct) == (w.problems_total, w.voted_correct)
    # the unsharded command resumes on the merged store (same identity) with nothing left to do
    store = open_store(str(tmp_path / "merged"), PROBLEMS, CFG, "test")
    store.close()


async def test_missing_shard_is_listed(tmp_path: Path) -> None:
    await _run(tmp_path / "s1", FakeBackend(answers=[42]), FakePool(), shard=Shard(1, 2))
    rep = merge_runs([tmp_path / "s1"], tmp_path / "merged")
    assert rep.missing == ("p1", "p3") and "missing 2: p1, p3" in rep.describe()
    assert read_run(tmp_path / "merged").manifest["shards_missing"] == ["2/2"]


async def test_overlapping_and_mismatched_shards_are_refused(tmp_path: Path) -> None:
    await _run(tmp_path / "s1", FakeBackend(answers=[42]), FakePool(), shard=Shard(1, 2))
    await _run(tmp_path / "a1of3", FakeBackend(answers=[42]), FakePool(), shard=Shard(1, 3))
    await _run(tmp_path / "other", FakeBackend(answers=[42]), FakePool(),
               cfg=RunConfig(solve=SolveConfig(samples=2, tir_ratio=0.5, rollout=RolloutConfig(max_tokens=400))),
               shard=Shard(2, 2))
    await _run(tmp_path / "whole", FakeBackend(answers=[42]), FakePool())
    with pytest.raises(UserError, match="both shard 1/2"):
        merge_runs([tmp_path / "s1", tmp_path / "s1"], tmp_path / "m1")
    with pytest.raises(UserError, match="is shard 1/3 but .* is one of 2"):
        merge_runs([tmp_path / "s1", tmp_path / "a1of3"], tmp_path / "m2")
    with pytest.raises(UserError, match="not a shard of the same run .*: samples is 2 there, 3 here"):
        merge_runs([tmp_path / "s1", tmp_path / "other"], tmp_path / "m3")
    with pytest.raises(UserError, match="is not a shard"):
        merge_runs([tmp_path / "whole"], tmp_path / "m4")


def test_cli_refuses_with_one_line(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "tirmath", "merge-runs", str(tmp_path / "nope"), "--out",
                          str(tmp_path / "m")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [f"tirmath merge-runs: error: {tmp_path / 'nope'}: not a run folder "
                                               "(no manifest.json)"]




@pytest.mark.engine
@pytest.mark.slow
async def test_real_engine_shards_merge_to_the_unsharded_run(tmp_path: Path, vllm_backend: Any,
                                                             pool: Any) -> None:
    probs = [Problem("cubes", "What is the sum of the cubes of the integers from 1 to 5?", "225"),
             Problem("rem", "What is the remainder when 2^10 is divided by 7?", "2"),
             Problem("sq", "What is 12 squared?", "144")]
    # one request at a time, so batching cannot change a float32 logit between the two runs
    roll = RolloutConfig(max_tokens=96, temperature=0.8)
    cfg = RunConfig(solve=SolveConfig(samples=2, tir_ratio=0.5, seed=5, rollout=roll, concurrency=1), concurrency=1)
    for k in (1, 2):
        await _run(tmp_path / f"s{k}", vllm_backend, pool, cfg, Shard(k, 2), probs)
    await _run(tmp_path / "whole", vllm_backend, pool, cfg, None, probs)
    rep = merge_runs([tmp_path / "s1", tmp_path / "s2"], tmp_path / "merged")
    assert rep.missing == () and rep.samples == 6
    assert view(tmp_path / "merged") == view(tmp_path / "whole")
