"""A Python installation a kernel's private uid can read, when the real one sits under a closed
directory (e.g. /root/.pyenv with /root mode 0700) and bubblewrap is not there to bind it.

`ensure(prefixes)` builds, once per installation state, a mirror under /var/cache/tirmath: real
directories (same modes, root-owned) holding hard links to the original files (a copy where the
mirror is on another filesystem), and returns where the kernel's Python now lives. Nothing on
the host changes its permissions: /root stays closed and the mirror holds only the installation.
The mirror is keyed by a fingerprint of the installation (its site-packages listings), so a
`pip install` leads to a new mirror at the next start; mirrors of older states are removed
after a day. The cost: every local user can now read the Python installation (only it), as they
could had it been installed under /usr or /opt. A venv's `pyvenv.cfg` is rewritten to point at the mirrored base. This module does
not decide whether a mirror is needed (isolation.py does) and only root may build one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import site
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BASE = Path(os.environ.get("TIRMATH_PYROOT", "/var/cache/tirmath"))
STALE_SECONDS = 86_400


@dataclass(frozen=True)
class Mirror:
    """Where the kernel's Python lives in the mirror."""

    root: str  # the mirror's root: original path P is at root + P
    executable: str
    libdir: str  # for LD_LIBRARY_PATH (an interpreter whose RUNPATH names the closed original)

    def path(self, original: str) -> str:
        return self.root + original


def fingerprint(prefixes: list[str]) -> str:
    h = hashlib.sha256()
    for p in prefixes:
        h.update(p.encode())
    for sp in sorted({*site.getsitepackages(), os.path.realpath(sys.executable)}):
        with contextlib.suppress(OSError):
            st = os.stat(sp)
            h.update(f"{sp}:{st.st_ino}:{st.st_mtime_ns}".encode())
            if stat.S_ISDIR(st.st_mode):
                for e in sorted(os.scandir(sp), key=lambda e: e.name):
                    h.update(f"{e.name}:{e.inode()}".encode())
    return h.hexdigest()[:16]


def _link_tree(src: str, dst: str) -> None:
    for dirpath, dirnames, filenames in os.walk(src, followlinks=False):
        rel = os.path.relpath(dirpath, src)
        out = os.path.normpath(os.path.join(dst, rel))
        os.makedirs(out, exist_ok=True)
        os.chmod(out, stat.S_IMODE(os.stat(dirpath).st_mode))
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            s, d = os.path.join(dirpath, name), os.path.join(out, name)
            if os.path.islink(s):
                target = os.readlink(s)
                os.symlink(target if not target.startswith(src) else dst + target[len(src):], d)
                continue
            try:
                os.link(s, d)
            except OSError:  # another filesystem, or a file type links refuse
                with contextlib.suppress(OSError):
                    shutil.copy2(s, d)


def _rewrite_pyvenv(where: str, root: str, prefixes: list[str]) -> None:
    for p in prefixes:
        cfg = Path(where + p, "pyvenv.cfg")
        if cfg.is_file():
            text = cfg.read_text()
            cfg.unlink()  # a hard link: never write through it into the original
            for q in prefixes:
                text = text.replace(f"= {q}", f"= {root}{q}")
            cfg.write_text(text)
            cfg.chmod(0o644)


def build(prefixes: list[str], dest: Path) -> None:
    tmp = Path(f"{dest}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True, mode=0o755)
    for p in prefixes:
        parts = Path(p).parts
        for i in range(2, len(parts)):  # directories between the mirror root and the prefix: 0755
            d = Path(str(tmp) + str(Path(*parts[:i])))
            d.mkdir(exist_ok=True)
            d.chmod(0o755)
        _link_tree(p, str(tmp) + p)
    _rewrite_pyvenv(str(tmp), str(dest), prefixes)  # paths inside name the final location
    try:
        tmp.rename(dest)
    except OSError:  # another process built the same mirror meanwhile
        shutil.rmtree(tmp, ignore_errors=True)


def _sweep(keep: Path) -> None:
    for d in BASE.glob("pyroot-*"):
        with contextlib.suppress(OSError):
            if d != keep and time.time() - d.stat().st_mtime > STALE_SECONDS:
                shutil.rmtree(d, ignore_errors=True)


def ensure(prefixes: list[str]) -> Mirror:
    """The mirror of `prefixes` (built if missing; ~seconds per 100k files the first time)."""
    prefixes = sorted(set(prefixes))
    dest = BASE / f"pyroot-{fingerprint(prefixes)}"
    if not dest.is_dir():
        BASE.mkdir(parents=True, exist_ok=True)
        BASE.chmod(0o755)
        build(prefixes, dest)
    _sweep(dest)
    root = str(dest)
    exe = os.path.realpath(sys.executable)
    return Mirror(root, root + exe, root + os.path.join(sys.base_prefix, "lib"))
