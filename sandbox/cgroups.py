"""Per-kernel cgroups (v1 or v2) limiting memory and process count, and listing a kernel's processes.

Each kernel gets a child of *this process's own* cgroup (so any limit the host already puts on
us still applies on top). The kernel's launcher joins it before it execs, so every process a cell
starts (setsid daemons included) is in it and can be listed and killed. This module does not
decide whether cgroups are wanted; `isolation.probe()` does, by calling `find_tree()`.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class CgroupTree:
    """Where per-kernel cgroups can be made: one parent directory per controller."""

    version: int  # 1 or 2
    memory: Path | None  # parent directory for the memory controller
    pids: Path | None  # parent directory for the pids controller

    def describe(self) -> str:
        parts = [name for name, p in (("memory", self.memory), ("pids", self.pids)) if p is not None]
        return f"cgroup v{self.version} ({', '.join(parts)})"

    def create(self, name: str, memory_bytes: int, max_pids: int) -> KernelCgroup:
        dirs: list[Path] = []
        for parent in {p for p in (self.memory, self.pids) if p is not None}:
            d = parent / name
            d.mkdir(exist_ok=True)
            dirs.append(d)
        cg = KernelCgroup(self.version, tuple(dirs))
        cg.write_limits(memory_bytes, max_pids)
        return cg


@dataclass(frozen=True)
class KernelCgroup:
    """The cgroup directories of one kernel (one per v1 controller, or one v2 directory)."""

    version: int
    dirs: tuple[Path, ...]

    @property
    def procs_files(self) -> tuple[str, ...]:
        return tuple(str(d / "cgroup.procs") for d in self.dirs)

    def write_limits(self, memory_bytes: int, max_pids: int) -> None:
        for d in self.dirs:
            for fname, value in (
                ("memory.limit_in_bytes", memory_bytes),
                ("memory.max", memory_bytes),
                ("pids.max", max_pids),
            ):
                if (d / fname).exists():
                    (d / fname).write_text(str(value))
            with contextlib.suppress(OSError):
                if (d / "memory.swap.max").exists():
                    (d / "memory.swap.max").write_text("0")

    def pids(self) -> set[int]:
        found: set[int] = set()
        for f in self.procs_files:
            with contextlib.suppress(OSError):
                found.update(int(x) for x in Path(f).read_text().split())
        return found

    def oom_kills(self) -> int:
        """How many processes the kernel's OOM killer took from this cgroup so far."""
        total = 0
        for d in self.dirs:
            for fname in ("memory.oom_control", "memory.events"):
                with contextlib.suppress(OSError):
                    for line in (d / fname).read_text().splitlines():
                        key, _, value = line.partition(" ")
                        if key == "oom_kill":
                            total += int(value)
        return total

    def kill(self, keep: set[int] = frozenset()) -> int:  # type: ignore[assignment]
        """SIGKILL every process in the cgroup except `keep`; returns how many were signalled."""
        n = 0
        for pid in self.pids() - set(keep):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                n += 1
        return n

    def remove(self) -> None:
        for d in self.dirs:
            with contextlib.suppress(OSError):
                d.rmdir()


def _own_paths() -> dict[str, str]:
    """controller name ('' for v2) -> this process's cgroup path, from /proc/self/cgroup."""
    out: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for c in controllers.split(",") if controllers else [""]:
                out[c] = path
    return out


def _writable_child(parent: Path, probe_file: str) -> Path | None:
    """Return `parent` if a child cgroup with `probe_file` can be made and removed there."""
    test = parent / f"tirmath-probe-{os.getpid()}"
    try:
        test.mkdir(exist_ok=True)
        ok = (test / probe_file).exists()
        test.rmdir()
        return parent if ok else None
    except OSError:
        with contextlib.suppress(OSError):
            test.rmdir()
        return None


def find_tree() -> CgroupTree | None:
    """The writable cgroup parents for per-kernel limits, or None (e.g. a default container)."""
    own = _own_paths()
    if (ROOT / "cgroup.controllers").exists() and "" in own:  # pure v2
        parent = ROOT / own[""].lstrip("/")
        ctrl = (parent / "cgroup.subtree_control").read_text() if (parent / "cgroup.subtree_control").exists() else ""
        mem = _writable_child(parent, "memory.max") if "memory" in ctrl else None
        pids = _writable_child(parent, "pids.max") if "pids" in ctrl else None
        return CgroupTree(2, mem, pids) if (mem or pids) else None
    mem = pids = None
    if "memory" in own and (ROOT / "memory").is_dir():
        mem = _writable_child(ROOT / "memory" / own["memory"].lstrip("/"), "memory.limit_in_bytes")
    if "pids" in own and (ROOT / "pids").is_dir():
        pids = _writable_child(ROOT / "pids" / own["pids"].lstrip("/"), "pids.max")
    return CgroupTree(1, mem, pids) if (mem or pids) else None


def sweep_stale(tree: CgroupTree) -> int:
    """Remove empty per-kernel cgroups left by tirmath processes that no longer exist."""
    n = 0
    for parent in {p for p in (tree.memory, tree.pids) if p is not None}:
        for d in parent.glob("tirmath-*-*"):
            pid = d.name.split("-")[1]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                with contextlib.suppress(OSError):
                    d.rmdir()
                    n += 1
    return n
