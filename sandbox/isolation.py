"""Probe what isolation this machine allows (`probe()`), and check it against what was asked.

Layers, from always-there to where-the-machine-allows (report.py names each one for doctor):
  always:   private work directory, environment allow-list, rlimits (address space, file size,
            open files, processes, no core dumps), single-threaded BLAS, no GPU visible;
  strict:   bubblewrap: network, PID, IPC and UTS namespaces, a root holding only system
            libraries, Python and a short /etc list, private size-limited /tmp, /dev/shm and work
            dir; a private uid with no capabilities; the seccomp filter (seccomp.py);
  partial:  without bubblewrap (a Docker container, a Kaggle notebook): Landlock over reads and
            writes, the seccomp filter (which also denies connect() there), no capabilities, and
            a private uid even when Python sits under a closed directory (pyroot.py mirror);
  cgroups:  per-kernel memory and process limits, OOM kill counts, a list of a kernel's processes.
`probe()` starts the real launch chain once per process and reads from inside what took hold.
The command lines are built in command.py. No security proof: defence in depth for model-written
code, not against a determined kernel exploit.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sandbox import _launch, command, pyroot
from sandbox.cgroups import find_tree
from sandbox.errors import UserError
from sandbox.pyroot import Mirror
from sandbox.report import CORE_LAYERS, FIX_BWRAP, Found, IsolationReport, Layer, build

__all__ = ["CORE_LAYERS", "FIX_BWRAP", "IsolationReport", "Layer", "probe", "require", "resolve"]
WORK_INSIDE = command.WORK_INSIDE
python_paths = command.python_paths


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


def python_reachable_by_others() -> bool:
    return not any(_closed_ancestors(p) for p in python_paths())


def _probe_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}


PROBE_CODE = """import os, socket
try:
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close(); net = 'inet-allowed'
except PermissionError:
    net = 'inet-denied'
caps = dict(l.split(':') for l in open('/proc/self/status') if l.startswith('Cap'))
print(os.getuid(), net, int(caps['CapEff'], 16), int(caps['CapBnd'], 16))
"""


@dataclass(frozen=True)
class _Run:
    ok: bool
    out: str
    uid: int = -1
    seccomp: bool = False
    no_caps: bool = False


def _run_probe(report: IsolationReport, tmp: str, uid: int | None) -> _Run:
    """Start the probe program through the real launch chain; read what it saw from inside."""
    command.install(report, tmp)
    py = command.kernel_python(report)
    env = _probe_env() | ({"LD_LIBRARY_PATH": report.mirror.libdir} if report.mirror else {})
    argv = command.launch_argv(report, {"CORE": 0}, tmp, uid, (), [py, "-I", "-S", "-c", PROBE_CODE])
    try:
        p = subprocess.run(argv, cwd=tmp, capture_output=True, text=True, timeout=30, env=env)
    except (OSError, subprocess.TimeoutExpired) as e:
        return _Run(False, str(e))
    out = (p.stdout + p.stderr).strip()
    words = p.stdout.split()
    if p.returncode != 0 or len(words) != 4:
        return _Run(False, out)
    return _Run(True, out, int(words[0]), words[1] == "inet-denied", words[2] == words[3] == "0")


def _seccomp_program() -> tuple[bool, str]:
    from sandbox import seccomp

    try:
        seccomp.program(True)
        return True, ""
    except seccomp.SeccompUnavailable as e:
        return False, str(e)


def _mirror(root: bool) -> tuple[Mirror | None, str]:
    """A readable copy of Python for the kernel uid, when root's Python is closed to others."""
    if not root or python_reachable_by_others():
        return None, ""
    try:
        return pyroot.ensure(python_paths()), ""
    except OSError as e:
        return None, f"no readable mirror of Python could be made in {pyroot.BASE} ({e}); set TIRMATH_PYROOT"


@functools.lru_cache(maxsize=8)
def probe(bwrap: str = "bwrap") -> IsolationReport:
    """Find what isolation works here (cached per bubblewrap name). About 0.2 s; the first run
    as root with Python under a closed directory also builds the Python mirror (pyroot.py)."""
    import tempfile

    root = os.geteuid() == 0
    uid = 65534 if root else None
    sc_ok, sc_why = _seccomp_program()
    tmp = tempfile.mkdtemp(prefix="tirmath-probe-")
    try:
        if root:
            os.chown(tmp, 65534, 65534)
        bw_path = shutil.which(bwrap)
        found = Found(root=root, seccomp_why=sc_why, cgroups=find_tree())
        if bw_path:
            found = _probe_strict(found, bw_path, uid, tmp, sc_ok)
        if found.bwrap is None:
            found = _probe_partial(found, uid, tmp, sc_ok)
        if not bw_path:
            found = dataclasses.replace(found, bwrap_why=f"{bwrap!r} not found")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return build(found)


def _refused(sc_ok: bool, with_sc: bool, failed: str) -> str:
    """Why seccomp is off when the sandbox started without it although the program was built."""
    return f"the kernel refused the filter: {failed[-200:]}" if sc_ok and not with_sc else ""


def _probe_strict(found: Found, bw: str, uid: int | None, tmp: str, sc_ok: bool) -> Found:
    failed = ""
    for with_sc in ([True, False] if sc_ok else [False]):
        r = _run_probe(IsolationReport("strict", (), bw, uid is not None, None, 0, with_sc), tmp, uid)
        if r.ok and r.uid == (uid if uid is not None else os.getuid()):
            return dataclasses.replace(found, bwrap=bw, drop_uid=uid is not None, seccomp=with_sc and r.seccomp,
                                       seccomp_why=_refused(sc_ok, with_sc, failed) or found.seccomp_why,
                                       no_caps=r.no_caps)
        failed = r.out
        found = dataclasses.replace(found, bwrap_why=(r.out.splitlines() or ["failed"])[-1][:200])
    return found


def _probe_partial(found: Found, uid: int | None, tmp: str, sc_ok: bool) -> Found:
    abi = _launch.landlock_abi()
    mirror, mirror_why = _mirror(found.root)
    drop = found.root and (mirror is not None or python_reachable_by_others())
    found = dataclasses.replace(found, mirror=mirror, mirror_why=mirror_why, drop_uid=drop)
    failed = ""
    for ll in ([abi, 0] if abi else [0]):
        for with_sc in ([True, False] if sc_ok else [False]):
            rep = IsolationReport("partial", (), None, drop, None, ll, with_sc, mirror)
            r = _run_probe(rep, tmp, uid if drop else None)
            if r.ok:
                return dataclasses.replace(found, landlock_abi=ll, seccomp=with_sc and r.seccomp,
                                           seccomp_why=_refused(sc_ok, with_sc, failed) or found.seccomp_why,
                                           no_caps=r.no_caps, drop_uid=drop and r.uid == uid)
            failed = r.out
            found = dataclasses.replace(found, partial_why=r.out[-300:])
    return dataclasses.replace(found, drop_uid=False)


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
