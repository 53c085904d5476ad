"""What the isolation probe found, as records: `Found` (raw facts) -> `IsolationReport` (layers).

`build(found)` names every layer, present or MISSING, and for a missing one what it would take
(e.g. "`apt-get install -y bubblewrap`"), and decides the level: "strict" needs bubblewrap, a
private uid (as root) and the seccomp filter; "partial" is anything less that still fences the
kernel (Landlock, seccomp or a uid drop); "none" is nothing. It probes nothing (isolation.py
does) and builds no command lines (command.py does).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from sandbox.cgroups import CgroupTree
from sandbox.pyroot import Mirror

CORE_LAYERS = ("network", "filesystem", "pid", "user", "capabilities", "seccomp")
FIX_BWRAP = "`apt-get install -y bubblewrap`"


@dataclass(frozen=True)
class Layer:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class IsolationReport:
    """What the probe found; `level` is "strict", "partial" or "none"."""

    level: str
    layers: tuple[Layer, ...]
    bwrap: str | None = None  # a bubblewrap that works here with the flags we use
    drop_uid: bool = False  # the launcher can switch to a private uid
    cgroups: CgroupTree | None = None
    landlock_abi: int = 0  # used only when bwrap is None
    seccomp: bool = False  # load sandbox/seccomp.py's program into every kernel
    mirror: Mirror | None = None  # partial mode: run kernels from this readable copy of Python

    def ok(self, name: str) -> bool:
        return any(layer.ok for layer in self.layers if layer.name == name)

    def missing(self) -> list[str]:
        return [f"{layer.name}: {layer.detail}" for layer in self.layers if not layer.ok]

    def describe(self) -> list[str]:
        lines = [f"sandbox isolation: {self.level}"]
        lines += [f"  [{'ok' if x.ok else 'MISSING'}] {x.name}: {x.detail}" for x in self.layers]
        return lines

    def degraded(self) -> IsolationReport:
        """The report for isolation "none": only the always-on layers."""
        keep = tuple(x for x in self.layers if x.name not in CORE_LAYERS)
        off = tuple(Layer(n, False, "off (isolation 'none' was asked for)") for n in CORE_LAYERS)
        return IsolationReport("none", keep + off, None, False, self.cgroups, 0, False, None)


@dataclass(frozen=True)
class Found:
    """Raw probe results."""

    root: bool
    cgroups: CgroupTree | None = None
    bwrap: str | None = None
    bwrap_why: str = ""
    drop_uid: bool = False
    no_caps: bool = False
    seccomp: bool = False
    seccomp_why: str = ""
    landlock_abi: int = 0
    mirror: Mirror | None = None
    mirror_why: str = ""
    partial_why: str = ""


def _common(f: Found) -> list[Layer]:
    return [
        Layer("workdir", True, "private work directory per kernel, mode 0700, owned by its uid"
              + (" (size-limited tmpfs)" if f.bwrap else "")),
        Layer("env", True, "environment allow-list; single-threaded BLAS; no GPU visible"),
        Layer("rlimits", True, "address space, file size, open files, processes, no core dumps"),
    ]


def _strict_layers(f: Found) -> list[Layer]:
    return [
        Layer("network", True, "network namespace via bubblewrap (no interfaces but its own lo)"),
        Layer("filesystem", True, "only /usr, /bin and /lib links, Python and a short /etc list, read-only; "
              "private /tmp, /dev/shm and work dir"),
        Layer("pid", True, "PID namespace: host processes invisible"),
        Layer("ipc", True, "IPC namespace and private /dev/shm: host semaphores and shared memory unreachable"),
        Layer("disk", True, "size-limited tmpfs for /tmp, /dev/shm and the work dir"),
    ]


def _partial_layers(f: Found) -> list[Layer]:
    hint = f"bubblewrap unusable ({f.bwrap_why or 'not found'}); {FIX_BWRAP}"
    abi = f.landlock_abi
    if abi:
        fs = Layer("filesystem", True, f"Landlock ABI {abi}: reads only /usr, /bin and /lib links, Python, a "
                   "short /etc list, its own /proc entry and /dev/null,zero,full,random,urandom; writes only "
                   "its work dir")
    else:
        fs = Layer("filesystem", False, f"no Landlock: host filesystem readable and writable by the uid; {hint}")
    net_ok = f.seccomp
    net = ("seccomp: sockets other than AF_UNIX denied, no connect()/sendto(address)/sendmsg()"
           if net_ok else f"NOT isolated (no seccomp: {f.seccomp_why}); {hint}")
    return [
        Layer("network", net_ok, net),
        fs,
        Layer("pid", False, f"host processes visible (their /proc entries unreadable); {hint}"),
        Layer("ipc", bool(abi), "/dev/shm denied by Landlock: host shared memory and semaphores unreachable, "
              "so multiprocessing locks fail" if abi else f"host /dev/shm reachable; {hint}"),
        Layer("disk", False, "no total disk quota without a private tmpfs (needs a mount): each file is "
              f"capped by RLIMIT_FSIZE only; {FIX_BWRAP}"),
    ]


def _user_layers(f: Found) -> list[Layer]:
    if f.root:
        where = " (from a readable mirror of Python, see pyroot.py)" if f.mirror and not f.bwrap else ""
        why = f.mirror_why or "Python is under a directory other users cannot enter"
        user = Layer("user", f.drop_uid, f"a private non-root uid per kernel{where}" if f.drop_uid
                     else f"runs as root: {why}")
    else:
        user = Layer("user", True, f"runs as uid {os.getuid()} (not root)")
    caps = Layer("capabilities", f.no_caps, "none: bounding, ambient, effective, permitted, inheritable sets "
                 "empty; no_new_privs" if f.no_caps else "the kernel keeps capabilities (it runs as root)")
    sc = Layer("seccomp", f.seccomp, "ptrace, mount, keyctl, bpf, perf, namespaces, modules, reboot, swap, "
               "chroot, clocks, io_uring, ... and non-AF_UNIX sockets fail with EPERM"
               + (" (bubblewrap --seccomp)" if f.bwrap else " (loaded by the launcher)")
               if f.seccomp else f"no syscall filter: {f.seccomp_why or 'refused by this kernel'}")
    return [user, caps, sc]


def build(f: Found) -> IsolationReport:
    layers = _common(f) + (_strict_layers(f) if f.bwrap else _partial_layers(f)) + _user_layers(f)
    cg = f.cgroups
    layers.append(Layer("cgroup", cg is not None, f"per-kernel {cg.describe()} limits; OOM kills counted" if cg
                        else "no writable cgroup tree: memory/process limits are per process only "
                        "(run with a delegated cgroup, e.g. `systemd-run --scope -p Delegate=yes`)"))
    layers.append(Layer("cleanup", True, "processes left by a cell are killed after it ("
                        + ("cgroup" if cg else "process tree") + ")"))
    strict = bool(f.bwrap) and f.seccomp and (f.drop_uid or not f.root)
    partial = bool(f.bwrap) or f.landlock_abi >= 1 or f.drop_uid or f.seccomp
    level = "strict" if strict else ("partial" if partial else "none")
    abi = 0 if f.bwrap else f.landlock_abi
    return IsolationReport(level, tuple(layers), f.bwrap, f.drop_uid, cg, abi, f.seccomp,
                           None if f.bwrap else f.mirror)
