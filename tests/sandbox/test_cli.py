"""`tirmath sandbox run` end to end: cells share state, --json, a missing file is one error line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sandbox.cli import main


def _cells(tmp_path: Path) -> tuple[Path, Path]:
    a = tmp_path / "a.py"
    a.write_text("x = 6 * 7\nprint('hello')\n")
    b = tmp_path / "b.py"
    b.write_text("x\n")
    return a, b


def test_run_prints_each_cell_and_keeps_state(tmp_path: Path, capsys) -> None:
    a, b = _cells(tmp_path)
    assert main(["run", str(a), str(b), "--timeout", "5"]) == 0
    out = capsys.readouterr().out
    assert f"--- {a}: ok" in out and "hello" in out
    assert out.rstrip().endswith("42")


def test_run_json_gives_one_object_per_cell(tmp_path: Path, capsys) -> None:
    a, _ = _cells(tmp_path)
    bad = tmp_path / "bad.py"
    bad.write_text("1/0\n")
    assert main(["run", "--json", str(a), str(bad)]) == 1
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["status"] for r in rows] == ["ok", "error"]
    assert rows[1]["error_name"] == "ZeroDivisionError" and rows[0]["output"] == "hello\n"


def test_missing_file_is_one_error_line_exit_2(tmp_path: Path) -> None:
    a, _ = _cells(tmp_path)
    p = subprocess.run([sys.executable, "-m", "tirmath", "sandbox", "run", str(a), str(tmp_path / "nope.py")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [f"tirmath sandbox: error: cell file {tmp_path / 'nope.py'} not found"]
    assert p.stdout == ""


def test_probe_lists_layers(capsys) -> None:
    assert main(["probe"]) == 0
    assert "sandbox isolation:" in capsys.readouterr().out
