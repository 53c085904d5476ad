"""`tirmath doctor`'s sandbox section names every layer and, for a missing one, the command that fixes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent import doctor
from sandbox.isolation import probe


def test_doctor_names_what_partial_mode_lacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # bubblewrap hidden, as a Docker or Kaggle user has it
    probe.cache_clear()
    try:
        level, lines = doctor._sandbox()
    finally:
        probe.cache_clear()
    assert level == "partial" and lines[0] == "sandbox isolation: partial"
    assert any(line.startswith("  [ok] seccomp:") for line in lines), lines
    assert any(line.startswith("  [MISSING] disk:") for line in lines), lines
    assert "to fix: apt-get install -y bubblewrap" in lines


def test_doctor_strict_has_nothing_to_fix() -> None:
    level, lines = doctor._sandbox()
    assert level == "strict", lines
    assert not [line for line in lines if "MISSING" in line or line.startswith("to fix")], lines
