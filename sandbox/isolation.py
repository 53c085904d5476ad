"""Probe what isolation this machine allows, and build the isolated command that starts a kernel.

Layers, from always-there to where-the-machine-allows:
  always:   private work directory, environment allow-list, rlimits (address space, file size,
            open files, processes, no core dumps), single-threaded BLAS, no GPU visible;
  bwrap:    network namespace (loopback only), read-only view of /, private size-limited /tmp and
            work dir, /root hidden, PID namespace, a private non-root uid;
  cgroups:  per-kernel memory and process limits, and an exact list of a kernel's processes;
  fallback: without bubblewrap, Landlock (TCP connect/bind denied, writes only in the work dir,
            reads only in system and Python directories) and the uid drop where Python is reachable.
`probe()` runs a real isolated command once per process and reports each layer as present or
missing. This module does not start kernels (see launch.py) and is no security proof: it is
defence in depth for model-written code, not for a determined kernel exploit.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import site
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from sandbox import _launch
from sandbox.cgroups import CgroupTree, find_tree
from sandbox.errors import UserError

LAUNCHER = str(Path(_launch.__file__).resolve())
WORK_INSIDE = "/tmp/work"  # the kernel's cwd inside bubblewrap
CORE_LAYERS = ("network", "filesystem", "pid", "user")


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
        return IsolationReport("none", keep + off, None, False, self.cgroups, 0)


def python_paths() -> list[str]:
    """Directories the kernel's Python needs to read (prefixes and site-packages)."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    paths.update(p for p in site.getsitepackages() if os.path.isdir(p))
    paths.update(p for p in sys.path if p and os.path.isdir(p) and not p.startswith(("/tmp", os.getcwd())))
    # keep only outermost ones
    out = sorted(paths)
    return [p for p in out if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in out)]


def _closed_ancestors(path: str) -> list[str]:
    """Ancestors of `path` (not /) that other users cannot enter (no o+x)."""
    out = []
    parts = Path(path).resolve().parts
    for i in range(2, len(parts) + 1):
        p = str(Path(*parts[:i]))
        try:
            if not os.stat(p).st_mode & stat.S_IXOTH:
                out.append(p)
        except OSError:
            pass
    return out


def masks() -> tuple[list[str], list[str]]:
    """(dirs to hide under an empty tmpfs, python dirs to bind back inside them) for bubblewrap."""
    hide: set[str] = {"/root"} if os.path.isdir("/root") else set()
    for p in python_paths():
        closed = _closed_ancestors(p)
        if closed:
            hide.add(closed[0])
    binds = [p for p in python_paths() if any(p.startswith(h + "/") or p == h for h in hide)]
    return sorted(hide), binds


def python_reachable_by_others() -> bool:
    return not any(_closed_ancestors(p) for p in python_paths())


def bwrap_args(bwrap: str, runtime: str, disk_mb: int) -> list[str]:
    """bubblewrap flags: new net/pid/ipc/uts (and, unless root, user) namespaces, read-only /,
    private size-limited /tmp, /dev/shm and work dir, /root hidden. As root bubblewrap runs
    privileged (so it can bind Python from under /root) and the inner launcher drops the uid."""
    size = str(disk_mb * 1024 * 1024)
    args = [bwrap] + ([] if os.geteuid() == 0 else ["--unshare-user"])
    args += ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    args += ["--die-with-parent", "--new-session", "--hostname", "sandbox"]
    args += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    for d in ("/tmp", "/dev/shm", WORK_INSIDE):
        args += ["--perms", "1777", "--size", size, "--tmpfs", d]
    hide, binds = masks()
    for h in hide:
        args += ["--perms", "0755", "--tmpfs", h]
    for b in binds:
        args += _dirs_between(hide, b) + ["--ro-bind", b, b]
    args += _dirs_between(["/tmp"], runtime) + ["--bind", runtime, runtime, "--chdir", WORK_INSIDE]
    return args + ["--"]


def _dirs_between(bases: list[str], target: str) -> list[str]:
    """`--dir` flags (mode 0755) for the directories between a tmpfs base and a bind target, so
    bubblewrap does not create them as 0700 root-only directories."""
    out: list[str] = []
    for base in bases:
        if target.startswith(base.rstrip("/") + "/"):
            parts = Path(target[len(base):].strip("/")).parts[:-1]
            for i in range(1, len(parts) + 1):
                out += ["--perms", "0755", "--dir", os.path.join(base, *parts[:i])]
    return out


def launch_argv(
    report: IsolationReport,
    limits: dict[str, int],
    runtime: str,
    uid: int | None,
    cgroup_procs: tuple[str, ...],
    argv: list[str],
    disk_mb: int = 256,
) -> list[str]:
    """The full command: launcher (cgroups) -> [bubblewrap -> launcher (rlimits, uid)] -> argv.

    `runtime` must hold a copy of the launcher (see `install_launcher`)."""
    uid = uid if report.drop_uid else None
    outer: dict[str, object]
    if report.bwrap:
        inner: dict[str, object] = {"rlimits": limits, "uid": uid, "no_new_privs": True, "argv": argv}
        inner_argv = [sys.executable, "-I", "-S", os.path.join(runtime, "_launch.py"), json.dumps(inner)]
        outer = {"cgroup_procs": list(cgroup_procs), "argv": bwrap_args(report.bwrap, runtime, disk_mb) + inner_argv}
    else:
        ll = landlock_paths(runtime) if report.landlock_abi else None
        outer = {"cgroup_procs": list(cgroup_procs), "rlimits": limits, "uid": uid, "landlock": ll,
                 "no_new_privs": True, "argv": argv}
    return [sys.executable, "-I", "-S", os.path.join(runtime, "_launch.py"), json.dumps(outer)]


def install_launcher(runtime: str) -> None:
    """Copy the launcher into a kernel's runtime dir (readable inside the sandbox as any uid)."""
    dst = os.path.join(runtime, "_launch.py")
    shutil.copyfile(LAUNCHER, dst)
    os.chmod(dst, 0o644)


def landlock_paths(runtime: str) -> dict[str, list[str]]:
    system = ["/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/opt", "/proc", "/sys", "/dev"]
    read = [p for p in system + python_paths() if os.path.exists(p)]
    return {"read": read, "write": [runtime, "/dev/null", "/dev/shm"]}


def _try(argv: list[str], cwd: str, timeout: float = 20.0) -> tuple[bool, str]:
    try:
        p = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=_probe_env())
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, str(e)
    return p.returncode == 0, (p.stdout + p.stderr).strip()


def _probe_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}


def _probe_bwrap(bwrap: str, uid: int | None, tmp: str) -> tuple[bool, str]:
    """Run Python inside the full bubblewrap sandbox as the private uid; check it is cut off."""
    code = "import os,socket;s=socket.socket();s.settimeout(1);r=s.connect_ex(('127.0.0.1',9));print(os.getuid(),r)"
    report = IsolationReport("strict", (), bwrap, uid is not None)
    ok, out = _try(launch_argv(report, {"CORE": 0}, tmp, uid, (), [sys.executable, "-I", "-S", "-c", code]), tmp)
    return ok and out.split()[:1] == [str(uid if uid is not None else os.getuid())], out


def _probe_landlock(tmp: str) -> int:
    """Landlock ABI usable from a child (0 if none or it fails)."""
    abi = _launch.landlock_abi()
    if abi < 1:
        return 0
    report = IsolationReport("partial", (), None, False, None, abi)
    ok, _ = _try(launch_argv(report, {"CORE": 0}, tmp, None, (), [sys.executable, "-I", "-S", "-c", "pass"]), tmp)
    return abi if ok else 0


@functools.lru_cache(maxsize=8)
def probe(bwrap: str = "bwrap") -> IsolationReport:
    """Find what isolation works here (cached per bubblewrap name). Takes ~0.1 s the first time."""
    import tempfile

    root = os.geteuid() == 0
    tmp = tempfile.mkdtemp(prefix="tirmath-probe-")
    try:
        probe_uid = 65534 if root else None
        install_launcher(tmp)
        if root:
            os.chown(tmp, 65534, 65534)
        bw_path = shutil.which(bwrap)
        bw_ok, bw_out = _probe_bwrap(bw_path, probe_uid, tmp) if bw_path else (False, f"{bwrap!r} not found")
        ll_abi = 0 if bw_ok else _probe_landlock(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _report(bw_path if bw_ok else None, bw_out, root, ll_abi, find_tree())


def _report(bw: str | None, bw_out: str, root: bool, ll_abi: int, cg: CgroupTree | None) -> IsolationReport:
    why = (bw_out.splitlines() or ["failed"])[-1][:200]
    hint = f"bubblewrap unusable ({why}); `apt-get install -y bubblewrap`"
    drop = root and (bw is not None or python_reachable_by_others())
    layers = [
        Layer("workdir", True, "private temporary work directory per kernel"
              + (" (size-limited tmpfs)" if bw else "")),
        Layer("env", True, "environment allow-list; single-threaded BLAS; no GPU visible"),
        Layer("rlimits", True, "address space, file size, open files, processes, no core dumps"),
    ]
    if bw:
        layers += [Layer("network", True, "network namespace via bubblewrap (no interfaces but its own lo)"),
                   Layer("filesystem", True, "read-only view of /, private /tmp, /root hidden"),
                   Layer("pid", True, "PID namespace: host processes invisible")]
    else:
        layers += [Layer("network", ll_abi >= 4, f"Landlock ABI {ll_abi}: TCP connect/bind denied (UDP not)"
                         if ll_abi >= 4 else f"NOT isolated: {hint}"),
                   Layer("filesystem", ll_abi >= 1, f"Landlock ABI {ll_abi}: writes only in the work dir"
                         if ll_abi >= 1 else f"host filesystem writable: {hint}"),
                   Layer("pid", False, f"host processes visible: {hint}")]
    if root:
        layers.append(Layer("user", drop, "a private non-root uid per kernel" if drop
                            else "runs as root: Python is under a directory other users cannot enter"))
    else:
        layers.append(Layer("user", True, f"runs as uid {os.getuid()} (not root)"))
    layers.append(Layer("cgroup", cg is not None, f"per-kernel {cg.describe()} limits" if cg
                        else "no writable cgroup tree: memory/process limits are per process only"))
    layers.append(Layer("cleanup", True, "processes left by a cell are killed after it ("
                        + ("cgroup" if cg else "process tree") + ")"))
    strict = bool(bw) and drop if root else bool(bw)
    partial = bool(bw) or ll_abi >= 1 or drop
    level = "strict" if strict else ("partial" if partial else "none")
    return IsolationReport(level, tuple(layers), bw, drop, cg, 0 if bw else ll_abi)


def resolve(isolation: str, bwrap: str = "bwrap") -> IsolationReport:
    """The report to run with for a config's `isolation`, or UserError if it cannot be had."""
    return require(probe(bwrap), isolation)


def require(report: IsolationReport, isolation: str) -> IsolationReport:
    """Check a probe's report against the wanted isolation ("auto", "strict", "none")."""
    if isolation == "none":
        return report.degraded()
    if isolation == "strict" and report.level != "strict":
        raise UserError(
            "sandbox isolation 'strict' is not available here; missing: "
            + "; ".join(report.missing())
        )
    if report.level == "none":
        raise UserError(
            "no sandbox isolation is available here (" + "; ".join(report.missing()) + "). "
            "Install bubblewrap (`apt-get install -y bubblewrap`) or, to run model code "
            "unisolated on purpose, pass isolation 'none' (CLI: --sandbox none)"
        )
    return report
