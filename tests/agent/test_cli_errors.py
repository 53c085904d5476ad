"""`tirmath solve` and the dispatcher: bad input gives one clear line and exit 2, no traceback.

Each case fails before any model is loaded, so these run in seconds.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest


def tirmath(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tirmath", *args], capture_output=True, text=True, timeout=timeout
    )


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


CASES = [
    (["solve", "   "], "empty"),
    (["solve"], "give exactly one of"),
    (["solve", "x", "--dataset", "aime2025", "--id", "1"], "give exactly one of"),
    (["solve", "--dataset", "no_such_set", "--id", "1"], "no_such_set"),
    (["solve", "--dataset", "aime2025", "--id", "2099-I-1"], "2099-I-1"),
    (["solve", "--file", "/nonexistent/p.txt"], "/nonexistent/p.txt"),
    (["solve", "1+1", "--samples", "0"], "--samples"),
    (["solve", "1+1", "--tir-ratio", "1.5"], "--tir-ratio"),
    (["solve", "1+1", "--policy", "bogus:7"], "bogus"),
    (["solve", "1+1", "--weight", "bogus"], "bogus"),
    (["solve", "1+1", "--trace", "/nonexistent/dir/t.jsonl"], "/nonexistent/dir"),
    (["solve", "1+1", "--model", "/nonexistent/model-dir", "--tir-ratio", "0"], "/nonexistent/model-dir"),
    (["solve", "1+1", "--tir-ratio", "0", "--tensor-parallel-size", "2"], "GPU"),
    (["nosuchcommand"], "unknown command"),
]


@pytest.mark.parametrize("args,needle", CASES, ids=[" ".join(c[0])[:40] for c in CASES])
def test_bad_input_one_line_exit_2(args: list[str], needle: str) -> None:
    r = tirmath(*args)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr and needle in lines[0]


def test_unreachable_server_is_one_line() -> None:
    r = tirmath("solve", "1+1", "--tir-ratio", "0", "--server", f"http://127.0.0.1:{closed_port()}/v1")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "127.0.0.1" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_help_lists_commands() -> None:
    r = tirmath("--help")
    assert r.returncode == 0 and "solve" in r.stdout and "eval" in r.stdout
