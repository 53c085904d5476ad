"""evals on real parts: the default model in the shared vLLM engine and a local server, real
sandboxed kernels, the CLI as a user runs it, a run killed with SIGKILL and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pytest

from agent.config import RolloutConfig, SolveConfig
from agent.datasets import load_problems
from evals.gentir import FilterConfig, build_dataset
from evals.report import write_report
from evals.runner import RunConfig, open_store, run_problems
from evals.store import RECORDS, read_run

pytestmark = [pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.engine
async def test_small_eval_on_the_engine(vllm_backend, tmp_path: Path) -> None:
    from sandbox.pool import KernelPool, SandboxConfig

    problems = load_problems("aime2025", limit=3)
    cfg = RunConfig(solve=SolveConfig(samples=2, tir_ratio=0.5, seed=1, rollout=RolloutConfig(max_tokens=256)), concurrency=3)
    pool = KernelPool(3, SandboxConfig(isolation="auto"))
    await pool.start()
    store = open_store(str(tmp_path / "run"), problems, cfg, "aime2025")
    try:
        await run_problems(problems, [vllm_backend], pool, cfg, store)
    finally:
        store.close()
        await pool.close()
    data = read_run(tmp_path / "run")
    recs = data.all_samples()
    assert sorted((r.problem_id, r.index) for r in recs) == sorted((p.id, i) for p in problems for i in range(2))
    assert all(0 < r.tokens <= 256 and r.trace.completion for r in recs)
    assert [r.mode for r in recs if r.problem_id == problems[0].id] == ["cot", "tir"]
    assert len(data.problems) == 3
    paths = write_report(data, tmp_path / "report")
    assert problems[0].id in paths.markdown.read_text()
    stats = build_dataset(data, FilterConfig(keep_incorrect=True, allow_cell_errors=True), tmp_path / "ds")
    assert len(datasets.load_from_disk(str(tmp_path / "ds"))) == stats.kept


def _cmd(out: Path, server_url: str, model_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "tirmath", "eval", "--dataset", "aime2025", "--limit", "2", "--samples", "2",
            "--tir-ratio", "0.5", "--max-tokens", "96", "--seed", "7", "--server", server_url, "--model",
            str(model_dir), "--concurrency", "1", "--sample-concurrency", "1", "--out", str(out), "--quiet", *extra]


def _view(run: Path) -> dict[tuple[str, int], tuple]:
    return {(r.problem_id, r.index): (r.seed, r.mode, r.answer, r.tokens, r.trace.completion, r.tool_statuses)
            for r in read_run(run).all_samples()}


def _stored_samples(run: Path) -> int:
    f = run / RECORDS
    return f.read_bytes().count(b'"kind":"sample"') if f.exists() else 0


@pytest.mark.server
def test_cli_eval_killed_and_resumed_matches_uninterrupted(server_url: str, default_model_dir: Path,
                                                           tmp_path: Path) -> None:
    full = tmp_path / "full"
    r = subprocess.run(_cmd(full, server_url, default_model_dir), cwd=REPO, capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "problems finished: 2/2" in r.stdout and "pass@1" in r.stdout
    # the same run, killed with SIGKILL once a sample is stored, then rerun to the end
    part = tmp_path / "part"
    proc = subprocess.Popen(_cmd(part, server_url, default_model_dir), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while _stored_samples(part) < 1 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the process group we started: the CLI and its kernels
        proc.wait()
    killed_at = _stored_samples(part)
    assert 1 <= killed_at < 4, "the run was not interrupted mid-way"
    r2 = subprocess.run(_cmd(part, server_url, default_model_dir), cwd=REPO, capture_output=True, text=True,
                        timeout=900)
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert _view(part) == _view(full)
    assert _stored_samples(part) == 4  # none lost, none duplicated
    strip = [ln for ln in r.stdout.splitlines() if "time in problems" not in ln and "mean sample s" not in ln]
    strip2 = [ln for ln in r2.stdout.splitlines() if "time in problems" not in ln and "mean sample s" not in ln]
    assert strip == strip2  # the same summary, wall times aside
    # the same command with another config on the same folder is refused
    r3 = subprocess.run(_cmd(part, server_url, default_model_dir, "--temperature", "0.9"), cwd=REPO,
                        capture_output=True, text=True, timeout=300)
    assert r3.returncode == 2 and "another config" in r3.stderr
    # report and gen-tir from the command line
    rep = subprocess.run([sys.executable, "-m", "tirmath", "report", str(part)], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert rep.returncode == 0 and "# tirmath run report" in rep.stdout
    assert (part / "report" / "viewer.html").exists()


@pytest.mark.server
def test_cli_gen_tir_writes_a_loadable_dataset(server_url: str, default_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "gen"
    cmd = [sys.executable, "-m", "tirmath", "gen-tir", "--dataset", "aime2025", "--limit", "1", "--samples", "2",
           "--max-tokens", "96", "--server", server_url, "--model", str(default_model_dir), "--out", str(out),
           "--keep-incorrect", "--allow-cell-errors", "--quiet"]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "gen-tir: kept" in r.stdout
    ds = datasets.load_from_disk(str(out / "dataset"))
    data = read_run(out / "run")
    assert {rec.mode for rec in data.all_samples()} == {"tir"} and len(data.all_samples()) == 2
    assert "messages" in ds.column_names and "tool_statuses" in ds.column_names
    manifest = json.loads((out / "run" / "manifest.json").read_text())
    assert manifest["config"]["tir_ratio"] == 1.0
