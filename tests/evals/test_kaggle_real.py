"""The competition path on the real default model (vLLM CPU engine, real kernels): the Solver API,
`tirmath kaggle-local` killed and resumed, the submission script rehearsed with `--notebook`.

Each test starts (and closes) its own engine, one at a time: the Solver's engine lives on the
Solver's own thread, so it cannot share the session's `vllm_backend` fixture. The default model
cannot do olympiad maths: these tests check the contract, the records and the resume, not scores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from agent.datasets import load_problems

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.engine]


def reference_csv(path: Path, n: int = 3) -> Path:
    """The first n AIMO3 reference problems as the competition's CSV (id, problem, answer)."""
    problems = load_problems("aimo3_reference", limit=n)
    pl.DataFrame({"id": [p.id for p in problems], "problem": [p.text for p in problems],
                  "answer": [int(p.answer or 0) for p in problems]}).write_csv(path)
    return path


def env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", VLLM_CPU_KVCACHE_SPACE="1")


def test_solver_on_the_default_model_is_reused_across_problems() -> None:
    from agent.api import Solver
    from agent.config import EngineConfig, RolloutConfig, SolveConfig

    config = SolveConfig(samples=2, tir_ratio=0.5, rollout=RolloutConfig(max_tokens=48, max_tool_calls=1))
    with Solver(config, EngineConfig(max_model_len=2048, kv_cache_gib=0.5)) as solver:
        solver.wait_ready()
        backend = solver.backend
        first = solver.solve("What is 2 + 3?", time_budget=300)
        second = solver.solve("What is 7 * 6?", id="mul", modulus=1000)
        assert solver.backend is backend  # started once, reused
    for r in (first, second):
        d = r.to_dict()
        assert {"answer", "vote", "samples", "stop_reason", "seconds"} <= set(d)
        assert sorted(s["mode"] for s in d["samples"]) == ["cot", "tir"]
        assert all(t.tokens > 0 for t in r.traces)
    assert second.problem.id == "mul" and second.problem.modulus == 1000


def _records(run: Path) -> list[dict]:
    """Store lines with their problem id at top level (a sample line keeps it inside its trace)."""
    rows = [json.loads(ln) for ln in (run / "records.jsonl").read_text().splitlines() if ln.strip()]
    return [{**r, "problem_id": r.get("problem_id") or r["trace"]["problem_id"]} for r in rows]


def test_kaggle_local_killed_and_resumed(tmp_path: Path) -> None:
    csv = reference_csv(tmp_path / "ref.csv")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "tirmath", "kaggle-local", "--csv", str(csv), "--competition", "aimo3",
           "--time-budget", "1500", "--samples", "2", "--tir-ratio", "0", "--max-tokens", "48",
           "--max-model-len", "2048", "--kv-cache-gib", "0.5", "--out", str(out)]
    log = tmp_path / "first.log"
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env(), cwd=ROOT,
                                start_new_session=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # "[1/3] ID: ANSWER ... used S s, left L s"
        assert first.startswith("[1/3] "), log.read_text()[-2000:]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    first_id = first.split()[1].rstrip(":")
    before = [r for r in _records(out / "run") if r["problem_id"] == first_id]
    assert any(r["kind"] == "problem" for r in before)
    time.sleep(1)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env(), cwd=ROOT, timeout=1500)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"[1/3] {first_id}: ")  # same seeded order, answered from the store
    after = [r for r in _records(out / "run") if r["problem_id"] == first_id]
    assert after == before  # nothing solved again for it
    problems = [r for r in _records(out / "run") if r["kind"] == "problem"]
    assert len(problems) == 3
    sub = pl.read_parquet(out / "submission.parquet")
    assert sorted(sub["id"].to_list()) == sorted(pl.read_csv(csv)["id"].to_list())
    assert all(0 <= a < 100000 for a in sub["answer"].to_list())
    assert any(ln.startswith("score: ") for ln in lines)
    report = subprocess.run([sys.executable, "-m", "tirmath", "report", str(out / "run")], capture_output=True,
                            text=True, env=env(), cwd=ROOT, timeout=300)
    assert report.returncode == 0 and "Kaggle score" in report.stdout


def test_submission_script_rehearsed_with_kaggle_local_notebook(tmp_path: Path) -> None:
    csv = reference_csv(tmp_path / "ref.csv")
    run_env = dict(env(), TIRMATH_TEST_CSV=str(csv), TIRMATH_SAMPLES="2", TIRMATH_MAX_TOKENS="48",
                   TIRMATH_TIME_BUDGET="1200", TIRMATH_RUN_DIR=str(tmp_path / "run"),
                   TIRMATH_BUNDLE=str(tmp_path / "no-bundle"), TIRMATH_KV_CACHE_GIB="0.5")
    done = subprocess.run([sys.executable, "-m", "tirmath", "kaggle-local", "--csv", str(csv), "--out",
                           str(tmp_path / "out"), "--time-budget", "1200", "--notebook",
                           str(ROOT / "examples" / "aimo3_submission.py")],
                          capture_output=True, text=True, env=run_env, cwd=tmp_path, timeout=1500)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sum(ln.startswith("[") for ln in done.stdout.splitlines()) == 3
    sub = pl.read_parquet(tmp_path / "out" / "submission.parquet")
    assert len(sub) == 3
    from evals.store import read_run

    data = read_run(tmp_path / "run")
    assert len(data.problems) == 3 and data.manifest["config"]["competition"] == "aimo3"
