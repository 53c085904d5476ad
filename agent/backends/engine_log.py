"""The engine's own output, kept out of the user's terminal: vLLM's import warnings, its start-up
lines (NUMA binding, checkpoint loading bars) and its engine-core process, which inherits the
standard error it was started with, all go to a log file instead.

`captured_stderr()` points file descriptor 2 at a fresh log file for the duration of a `with`
block (an engine core spawned inside it keeps writing there for its whole life) and yields the
path; `log_tail(path)` is what a failure message shows. With `TIRMATH_VERBOSE=1` (the CLI's
`--verbose`) nothing is captured. Not covered: Python `logging` levels (tirmath.cli sets them).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path


def verbose() -> bool:
    return os.environ.get("TIRMATH_VERBOSE", "") not in ("", "0")


@contextlib.contextmanager
def captured_stderr(prefix: str = "tirmath-vllm-") -> Iterator[Path | None]:
    """Send fd 2 to a log file inside the block; yields its path (None when verbose)."""
    if verbose():
        yield None
        return
    sys.stderr.flush()
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=".log")
    saved = os.dup(2)
    os.dup2(fd, 2)
    os.close(fd)
    try:
        yield Path(name)
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def log_tail(path: Path | None, lines: int = 6) -> str:
    """The last lines of an engine log that say something (errors first), for a one-line failure."""
    if path is None or not path.is_file():
        return ""
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    useful = [ln.strip() for ln in text if ln.strip() and "%|" not in ln and "it/s]" not in ln]
    errors = [ln for ln in useful if "Error:" in ln]
    picked = (errors or useful)[-lines:]
    return " | ".join(picked)[-600:]
