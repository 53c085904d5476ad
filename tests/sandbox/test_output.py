"""Unit tests of output capping and sanitising (pure functions, no kernel)."""

from __future__ import annotations

import pytest

from sandbox.output import OutputCollector, make_safe


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("\x1b[31mred\x1b[0m", "red"),
        ("a\x00b\x07c", "abc"),
        ("line\r\nnext", "line\nnext"),
        ("50%\r100%", "50%\n100%"),
        ("tab\tkept\n", "tab\tkept\n"),
        ("lone" + chr(0xD800) + "x", "lone\ufffdx"),
        ("\x9bc1 control", "c1 control"),
        ("é 😀 \u202e", "é 😀 \u202e"),
        ("\x1b]0;title\x07text", "text"),
    ],
)
def test_make_safe(raw: str, safe: str) -> None:
    assert make_safe(raw) == safe


def test_short_output_is_kept_whole() -> None:
    c = OutputCollector(limit=100, flood=1000)
    c.add("hello\n")
    c.add("world\n")
    assert c.render() == "hello\nworld\n"
    assert not c.truncated


def test_long_output_keeps_head_and_tail_with_a_note() -> None:
    c = OutputCollector(limit=100, flood=10_000)
    for i in range(1000):
        c.add(f"{i}\n")
    text = c.render()
    assert text.startswith("0\n1\n2\n")
    assert text.endswith("998\n999\n")
    assert "characters of output cut" in text
    assert c.truncated and len(text) < 200


def test_flood_is_detected() -> None:
    c = OutputCollector(limit=10, flood=50)
    c.add("x" * 40)
    assert not c.flooded
    c.add("x" * 20)
    assert c.flooded


def test_images_become_a_note_and_text_results_are_kept() -> None:
    c = OutputCollector(limit=1000, flood=10_000)
    c.add_message("display_data", {"data": {"image/png": "AAAA", "text/plain": "<Figure>"}})
    c.add_message("execute_result", {"data": {"text/plain": "42"}})
    assert c.render() == "[image/png output omitted]\n42\n"


def test_error_keeps_only_the_last_traceback_lines() -> None:
    c = OutputCollector(limit=1000, flood=10_000, error_lines=2)
    tb = ["Traceback (most recent call last):", "  frame 1", "  frame 2", "\x1b[31mValueError\x1b[0m: bad"]
    c.add("partial output")
    c.add_message("error", {"ename": "ValueError", "evalue": "bad", "traceback": tb})
    assert c.error_name == "ValueError"
    assert c.render() == "partial output\n  frame 2\nValueError: bad"
