"""Bad input to `tirmath eval` / `gen-tir` / `report`: one line on stderr, exit 2, before any model loads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def tirmath(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tirmath", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120)


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.mark.parametrize("case", ["unknown", "missing_answer", "duplicate", "bad_option", "report_not_run"])
def test_bad_input_is_one_line_exit_2(tmp_path: Path, case: str) -> None:
    rows = [{"id": f"q{i}", "problem": f"{i}+1?", "answer": str(i + 1)} for i in range(4)]
    out = str(tmp_path / "run")
    if case == "unknown":
        r, want = tirmath("eval", "--dataset", "no_such_set", "--out", out), "unknown dataset 'no_such_set'"
    elif case == "missing_answer":
        del rows[2]["answer"]
        f = _jsonl(tmp_path / "set.jsonl", rows)
        r, want = tirmath("eval", "--dataset", f, "--out", out), "set.jsonl line 3: no answer"
    elif case == "duplicate":
        rows[3]["id"] = "q1"
        f = _jsonl(tmp_path / "set.jsonl", rows)
        r, want = tirmath("gen-tir", "--dataset", f, "--out", out), "set.jsonl line 4: duplicate id 'q1'"
    elif case == "bad_option":
        r, want = tirmath("eval", "--dataset", "aime2025", "--out", out, "--tir-ratio", "2"), "--tir-ratio"
    else:
        r, want = tirmath("report", str(tmp_path)), "not a run folder"
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and want in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()  # nothing was started
