"""The in-process engine killed mid-eval (its core process SIGKILLed, as the OOM killer would):
the run stops with one line and exit code 1, the finished samples stay stored, and the same
command resumes to the same samples as an uninterrupted run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from evals.store import RECORDS, read_run

pytestmark = [pytest.mark.slow]

ROWS = [{"id": f"m{i}", "problem": f"What is {i} plus {2 * i}?", "answer": str(3 * i)} for i in range(1, 5)]


def _cmd(data: Path, out: Path) -> list[str]:
    # one request at a time: batching cannot change a float32 logit between runs
    return [sys.executable, "-m", "tirmath", "eval", "--dataset", str(data), "--out", str(out), "--samples", "2",
            "--tir-ratio", "0", "--max-tokens", "48", "--temperature", "0.8", "--seed", "4", "--concurrency", "1",
            "--sample-concurrency", "1", "--quiet"]


def _samples(run: Path) -> int:
    p = run / RECORDS
    return sum('"kind":"sample"' in line for line in p.read_text().splitlines()) if p.exists() else 0


def _engine_core(proc: subprocess.Popen[bytes]) -> psutil.Process | None:
    try:
        kids = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return None
    return next((k for k in kids if "EngineCore" in " ".join(k.cmdline()) + k.name()), None)


def view(run: Path) -> dict[tuple[str, int], tuple]:
    return {(r.problem_id, r.index): (r.seed, r.answer, r.tokens, r.finish, r.trace.completion)
            for r in read_run(run).all_samples()}


def test_engine_death_stops_cleanly_and_resumes_to_the_same_samples(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    run, whole = tmp_path / "run", tmp_path / "whole"
    proc = subprocess.Popen(_cmd(data, run), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 900
    while _samples(run) < 2:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
        assert time.monotonic() < deadline
        time.sleep(0.2)
    core = _engine_core(proc)
    assert core is not None, "the engine core process was not found"
    core.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    lines = [x for x in err.decode().splitlines() if x.strip()]
    assert proc.returncode == 1, err.decode()[-3000:]
    assert lines[-1].startswith("tirmath eval: error: the vLLM engine died"), lines[-5:]
    stored = _samples(run)
    assert 2 <= stored < 2 * len(ROWS)
    assert [r.finish for r in read_run(run).all_samples() if r.finish == "error"] == []

    again = subprocess.run(_cmd(data, run), capture_output=True, timeout=1200)
    assert again.returncode == 0, again.stderr.decode()[-3000:]
    ref = subprocess.run(_cmd(data, whole), capture_output=True, timeout=1200)
    assert ref.returncode == 0, ref.stderr.decode()[-3000:]
    assert len(view(run)) == 2 * len(ROWS)
    assert view(run) == view(whole)
