"""The isolated command line that starts a kernel, for what `isolation.probe()` found.

strict:  launcher (cgroups, seccomp program opened at fd 9) -> bubblewrap (new net/pid/ipc/uts
         namespaces; a root made of read-only binds of /usr, the /bin and /lib links, the Python
         installation and a short /etc list; private size-limited /tmp, /dev/shm and work dir;
         the kernel's runtime dir; `--seccomp 9`) -> launcher (rlimits, capabilities, uid) -> argv.
template placeholder (strict only, template.py): `/bin/sh` (cgroups: the outer launcher's part,
         without a Python start) -> bubblewrap (the same sandbox, every capability dropped, the
         seccomp program and `--info-fd` on descriptors the caller passes) -> argv; the template
         applies `inner_spec` to the kernel it forks into it.
partial: launcher (cgroups, rlimits, capabilities, uid, Landlock over reads and writes, seccomp)
         -> argv, run from a readable mirror of Python when the real one is closed to the uid.
What a kernel may read in either mode is `READ_SYSTEM` + `ETC` + the Python installation; the
project source, /work, /home, /root, /run and the rest of /etc are not there. This module only
builds argument lists; it starts nothing (launch.py does) and probes nothing (isolation.py does).
"""

from __future__ import annotations

import json
import os
import shutil
import site
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox import _launch

if TYPE_CHECKING:
    from sandbox.report import IsolationReport

LAUNCHER = str(Path(_launch.__file__).resolve())
WORK_INSIDE = "/tmp/work"  # the kernel's cwd inside bubblewrap
SECCOMP_FD = 9
SECCOMP_FILE = "seccomp.bpf"
READ_SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")
ETC = ("/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/ld.so.cache", "/etc/ld.so.conf",
       "/etc/ld.so.conf.d", "/etc/localtime", "/etc/alternatives")
PROC_READ = ("/proc/self", "/proc/cpuinfo", "/proc/meminfo", "/sys/devices/system/cpu")
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")


def python_paths() -> list[str]:
    """Directories the kernel's Python needs to read (prefixes and site-packages; not the other
    entries of sys.path, such as the project's source tree)."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    paths.update(p for p in site.getsitepackages() if os.path.isdir(p))  # not sys.path: no project source
    out = sorted(os.path.realpath(p) for p in paths)
    return [p for p in out if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in out)]


def _parents(target: str) -> list[str]:
    """`--dir` flags (mode 0755) for every ancestor of a bind target, so bubblewrap does not
    make them 0700 root-only directories."""
    out: list[str] = []
    parts = Path(target).parts[1:-1]
    for i in range(1, len(parts) + 1):
        out += ["--perms", "0755", "--dir", "/" + "/".join(parts[:i])]
    return out


def _system_binds() -> list[str]:
    out: list[str] = []
    for p in READ_SYSTEM:
        if os.path.islink(p):
            out += ["--symlink", os.readlink(p), p]
        elif os.path.isdir(p):
            out += ["--ro-bind", p, p]
    out += ["--perms", "0755", "--dir", "/etc"]
    for p in ETC:
        if os.path.exists(p):
            out += ["--ro-bind", p, p]
    return out + ["--ro-bind-try", "/sys/devices/system/cpu", "/sys/devices/system/cpu"]


def bwrap_args(bwrap: str, runtime: str, disk_mb: int, seccomp: bool, drop_caps: bool = False,
               seccomp_fd: int = SECCOMP_FD) -> list[str]:
    """bubblewrap flags: new net/pid/ipc/uts (and, unless root, user) namespaces; only the binds
    above on an empty root; private size-limited /tmp, /dev/shm and work dir. As root bubblewrap
    runs privileged (so it can bind Python from under /root) and the inner launcher drops the uid;
    `drop_caps` has bubblewrap drop every capability itself (a program run with no inner launcher)."""
    size = str(disk_mb * 1024 * 1024)
    args = [bwrap] + ([] if os.geteuid() == 0 else ["--unshare-user"])
    args += ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    args += ["--die-with-parent", "--new-session", "--hostname", "sandbox"]
    args += _system_binds() + ["--dev", "/dev", "--proc", "/proc"]
    for d in ("/tmp", "/dev/shm", WORK_INSIDE):
        args += ["--perms", "1777", "--size", size, "--tmpfs", d]
    for p in python_paths():
        if not p.startswith(READ_SYSTEM):
            args += _parents(p) + ["--ro-bind", p, p]
    args += _parents(runtime) + ["--bind", runtime, runtime, "--chdir", WORK_INSIDE]
    if seccomp:
        args += ["--seccomp", str(seccomp_fd)]
    if drop_caps:
        args += ["--cap-drop", "ALL"]
    return args + ["--"]


def landlock_paths(report: IsolationReport, runtime: str) -> dict[str, list[str]]:
    """What a partial-mode kernel may read and write (Landlock), and the rule to pin."""
    python = [report.mirror.root] if report.mirror else python_paths()
    read = [p for p in (*READ_SYSTEM, *ETC, *PROC_READ, *python) if os.path.exists(p)]
    return {"read": read, "write": [runtime, *DEVICES], "pin": ["/proc/self"]}


# argv: CGROUP_PROCS... -- PROGRAM ARGS...; exits 97 (like the launcher) if a step fails
JOIN_SH = 'while [ "$1" != -- ]; do echo $$ >"$1" || exit 97; shift; done; shift; exec "$@"'


def inner_spec(report: IsolationReport, limits: dict[str, int], uid: int | None) -> dict[str, object]:
    """What the launcher inside bubblewrap applies to the kernel: rlimits, uid, no capabilities."""
    return {"rlimits": limits, "uid": uid if report.drop_uid else None, "drop_caps": True, "no_new_privs": True}


def launch_argv(
    report: IsolationReport,
    limits: dict[str, int],
    runtime: str,
    uid: int | None,
    cgroup_procs: tuple[str, ...],
    argv: list[str],
    disk_mb: int = 256,
    nice: int = 0,
    fds: tuple[int, int] | None = None,
) -> list[str]:
    """The full command: launcher (cgroups, nice) -> [bubblewrap -> launcher (rlimits, uid)] -> argv.

    `runtime` must hold a copy of the launcher and, with seccomp, the program (see `install`).
    `fds` (bubblewrap only; template.py's placeholder): (seccomp program, info) descriptors the
    caller passes; a shell does the outer launcher's part (cgroups), bubblewrap loads the program
    from the first, runs `argv` itself with every capability dropped and writes its JSON info
    (the sandbox's init pid and namespace inodes) to the second; the template applies
    `inner_spec` to the kernel it forks into the sandbox."""
    uid = uid if report.drop_uid else None
    program = os.path.join(runtime, SECCOMP_FILE)
    outer: dict[str, object]
    if report.bwrap and fds is not None:
        wrap = bwrap_args(report.bwrap, runtime, disk_mb, report.seccomp, drop_caps=True, seccomp_fd=fds[0])
        wrap[-1:-1] = ["--info-fd", str(fds[1])]  # before the closing "--"
        return ["/bin/sh", "-c", JOIN_SH, "tirmath-sandbox", *cgroup_procs, "--", *wrap, *argv]
    if report.bwrap:
        inner = {**inner_spec(report, limits, uid), "argv": argv}
        inner_argv = [sys.executable, "-I", "-S", os.path.join(runtime, "_launch.py"), json.dumps(inner)]
        wrap = bwrap_args(report.bwrap, runtime, disk_mb, report.seccomp)
        outer = {"cgroup_procs": list(cgroup_procs), "fds": {str(SECCOMP_FD): program} if report.seccomp else {},
                 "nice": nice, "argv": wrap + inner_argv}
    else:
        ll = landlock_paths(report, runtime) if report.landlock_abi else None
        outer = {"cgroup_procs": list(cgroup_procs), "nice": nice, "rlimits": limits, "uid": uid, "landlock": ll,
                 "drop_caps": report.level != "none", "no_new_privs": True,
                 "seccomp": program if report.seccomp else None, "argv": argv}
    return [sys.executable, "-I", "-S", os.path.join(runtime, "_launch.py"), json.dumps(outer)]


def install(report: IsolationReport, runtime: str) -> None:
    """Copy the launcher (and write the seccomp program) into a kernel's runtime dir, readable
    inside the sandbox as any uid."""
    dst = os.path.join(runtime, "_launch.py")
    shutil.copyfile(LAUNCHER, dst)
    os.chmod(dst, 0o644)
    if report.seccomp:
        from sandbox import seccomp

        seccomp.write_program(os.path.join(runtime, SECCOMP_FILE), no_netns=report.bwrap is None)


def kernel_python(report: IsolationReport) -> str:
    """The interpreter a kernel runs (the mirror's, when there is one)."""
    return report.mirror.executable if report.mirror else sys.executable
