"""Paths a command reads or writes, checked before any work starts, and writes that cannot tear.

`check_path(path, kind)` says what is wrong with a path a command will read ("read": an existing
text file), write ("write": a file whose folder exists, not a folder) or fill ("dir": a folder,
created if missing, not a file), or None. `read_text` reads UTF-8 with one clear error;
`atomic_write` writes a temporary file beside the target and renames it, so a failed write at
the end of a run leaves the old file (or none) rather than half a file.

Not covered: run stores (evals.store appends and fsyncs its own records).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from agent.errors import UserError


def check_path(path: str, kind: str) -> str | None:
    """What is wrong with `path` for `kind` ("read", "write" or "dir"), or None when it is usable."""
    p = Path(path).expanduser()
    if kind == "read":
        if p.is_dir():
            return f"{path} is a folder, not a file"
        if not p.is_file():
            return f"{path}: no such file"
        if not os.access(p, os.R_OK):
            return f"{path} is not readable"
        return None
    if kind == "write":
        if p.is_dir():
            return f"{path} is a folder; give a file name"
        parent = p.parent if str(p.parent) else Path(".")
        if not parent.is_dir():
            return f"folder {parent} does not exist"
        if not os.access(parent, os.W_OK):
            return f"folder {parent} is not writable"
        return None
    if kind == "dir":
        if p.exists() and not p.is_dir():
            return f"{path} is a file; give a folder"
        anc = p
        while not anc.exists():
            anc = anc.parent
        if not anc.is_dir() or not os.access(anc, os.W_OK):
            return f"cannot create {path}: {anc} is not a writable folder"
        return None
    raise ValueError(f"unknown path kind {kind!r}")


def require_path(path: str, kind: str, flag: str) -> Path:
    """`check_path` as a UserError naming the flag; returns the path."""
    msg = check_path(path, kind)
    if msg is not None:
        raise UserError(f"{flag}: {msg}")
    return Path(path).expanduser()


def read_text(path: str, flag: str) -> str:
    """A text file's content as UTF-8; a missing, binary or non-UTF-8 file is one UserError."""
    p = require_path(path, "read", flag)
    data = p.read_bytes()
    if b"\x00" in data:
        raise UserError(f"{flag}: {path} is a binary file, not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{flag}: {path} is not UTF-8 text (bad byte at offset {e.start})") from None


def atomic_write(path: str | Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename (all or nothing)."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
