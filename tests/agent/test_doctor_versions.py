"""`tirmath doctor`'s TRL x vLLM check: a table of version pairs, and TRL's own stated range."""

from __future__ import annotations

import pytest

from agent.doctor import trl_vllm_range, version_agreement

RANGE = ("0.22.0", "0.31.0")


@pytest.mark.parametrize("vllm, warns", [
    ("0.22.0", False), ("0.31.0", False), ("0.31.0+cu129", False), ("0.26.1", False),
    ("0.32.0", True), ("0.33.0", True), ("0.21.9", True), ("1.0.0", True),
])
def test_vllm_inside_or_outside_trl_range(vllm: str, warns: bool) -> None:
    lines = version_agreement("1.16.0", vllm, RANGE)
    assert any(line.startswith("warning:") for line in lines) is warns, lines
    assert "0.22.0 to 0.31.0" in " ".join(lines)


def test_missing_pieces_are_said_not_warned() -> None:
    assert version_agreement(None, "0.32.0", RANGE) == ["trl: not installed (tirmath[train])"]
    assert "not installed" in version_agreement("1.16.0", None, RANGE)[-1]
    assert "unknown" in version_agreement("1.16.0", "0.32.0", None)[-1]


def test_range_is_read_from_the_installed_trl() -> None:
    import importlib.metadata

    span = trl_vllm_range()
    assert span is not None and span[0] < span[1]
    if importlib.metadata.version("trl").startswith("1.16."):
        assert span == RANGE
