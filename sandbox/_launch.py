"""Kernel launcher: join cgroups, set rlimits, drop to a private uid, Landlock, then exec.

Run as `python -I -S _launch.py SPEC_JSON` (standard library only, so it starts in ~10 ms and
imports nothing from the project). It runs as the caller's user up to the uid drop, so it can
write the kernel's cgroup.procs files. Every step is in the spec; a step that fails aborts the
launch with exit code 97 and a message on stderr, rather than running the kernel less isolated
than the probe promised. It does not build namespaces: bubblewrap, exec'd next, does that.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import sys

RLIMITS = {
    "AS": resource.RLIMIT_AS,
    "FSIZE": resource.RLIMIT_FSIZE,
    "NOFILE": resource.RLIMIT_NOFILE,
    "CORE": resource.RLIMIT_CORE,
    "NPROC": resource.RLIMIT_NPROC,
}
# Landlock (linux/landlock.h)
_SYS_CREATE, _SYS_ADD_RULE, _SYS_RESTRICT = 444, 445, 446
_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1, 2, 4, 8
_FS_WRITE_REST = 16 | 32 | 64 | 128 | 256 | 512 | 1024 | 2048 | 4096  # remove/make *
_FS_REFER, _FS_TRUNCATE = 8192, 16384


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi() -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    abi = libc.syscall(_SYS_CREATE, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(int(abi), 0)


def apply_landlock(read_paths: list[str], write_paths: list[str]) -> int:
    """Restrict this process: read/exec only under read_paths, write only under write_paths,
    no TCP bind/connect (ABI 4+), no signals or abstract sockets out of the domain (ABI 6+)."""
    libc = ctypes.CDLL(None, use_errno=True)
    abi = landlock_abi()
    if abi < 1:
        raise OSError("Landlock is not available")
    write = _FS_WRITE_FILE | _FS_WRITE_REST | (_FS_REFER if abi >= 2 else 0) | (_FS_TRUNCATE if abi >= 3 else 0)
    read = _FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR
    attr = _RulesetAttr(read | write, 3 if abi >= 4 else 0, 3 if abi >= 6 else 0)
    size = 8 if abi < 4 else (16 if abi < 6 else 24)
    fd = libc.syscall(_SYS_CREATE, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if fd < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    for paths, access in ((read_paths, read), (write_paths, read | write)):
        for p in paths:
            try:
                pfd = os.open(p, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            is_dir = os.path.isdir(p)
            rule = _PathBeneath(access if is_dir else access & (_FS_EXECUTE | _FS_READ_FILE | _FS_WRITE_FILE), pfd)
            if libc.syscall(_SYS_ADD_RULE, fd, 1, ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
                raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {p}")
            os.close(pfd)
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "prctl(NO_NEW_PRIVS) failed")
    if libc.syscall(_SYS_RESTRICT, fd, ctypes.c_uint32(0)) != 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    os.close(fd)
    return abi


def run(spec: dict) -> None:
    confine(spec)
    argv = spec["argv"]
    os.execv(argv[0], argv)


def confine(spec: dict) -> None:
    """Every step of `spec` but the exec (also used by template.py on a forked kernel)."""
    for procs in spec.get("cgroup_procs", []):
        with open(procs, "w") as f:
            f.write(str(os.getpid()))
    for name, value in spec.get("rlimits", {}).items():
        resource.setrlimit(RLIMITS[name], (value, value))
    uid = spec.get("uid")
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        if os.getuid() != uid or os.geteuid() != uid:
            raise OSError("uid drop did not take")
    ll = spec.get("landlock")
    if ll:
        apply_landlock(ll["read"], ll["write"])
    if spec.get("no_new_privs"):
        ctypes.CDLL(None).prctl(38, 1, 0, 0, 0)


def main() -> None:
    try:
        run(json.loads(sys.argv[1]))
    except Exception as e:  # any failure: refuse to start the kernel
        sys.stderr.write(f"tirmath sandbox launcher: {type(e).__name__}: {e}\n")
        os._exit(97)


if __name__ == "__main__":
    main()
