"""Kernel launcher: join cgroups, set rlimits, drop capabilities and uid, Landlock, seccomp, exec.

Run as `python -I -S _launch.py SPEC_JSON` (standard library only, so it starts in ~10 ms and
imports nothing from the project). It runs as the caller's user up to the uid drop, so it can
write the kernel's cgroup.procs files. Order: cgroups, rlimits, capability bounding set cleared
(while it still may), uid/gid drop, every remaining capability cleared, no_new_privs, Landlock,
then the seccomp program (compiled by sandbox/seccomp.py) last, so the steps before it may use
what it denies. `fds` opens files at fixed descriptor numbers for the next program (bubblewrap's
`--seccomp FD`). Every step is in the spec; a step that fails aborts the launch with exit code
97 and a message on stderr, rather than running the kernel less isolated than the probe
promised. It does not build namespaces: bubblewrap, exec'd next, does that.
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


def apply_landlock(read_paths: list[str], write_paths: list[str], pin: list[str] = ()) -> int:  # type: ignore[assignment]
    """Restrict this process: read/exec only under read_paths, write only under write_paths
    (a file path grants that file only), no TCP bind/connect (ABI 4+), no signals or abstract
    sockets out of the domain (ABI 6+). Paths in `pin` stay open across exec, so the inode the
    rule names (e.g. /proc/self, i.e. /proc/<this pid>) cannot be dropped and re-made."""
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
    file_bits = _FS_EXECUTE | _FS_READ_FILE | _FS_WRITE_FILE | (_FS_TRUNCATE if abi >= 3 else 0)
    for paths, access in ((read_paths, read), (write_paths, read | write)):
        for p in paths:
            try:
                pfd = os.open(p, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            is_dir = os.path.isdir(p)
            rule = _PathBeneath(access if is_dir else access & file_bits, pfd)
            if libc.syscall(_SYS_ADD_RULE, fd, 1, ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
                raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {p}")
            if p in pin:
                os.set_inheritable(pfd, True)
            else:
                os.close(pfd)
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "prctl(NO_NEW_PRIVS) failed")
    if libc.syscall(_SYS_RESTRICT, fd, ctypes.c_uint32(0)) != 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    os.close(fd)
    return abi


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def drop_bounding_set() -> None:
    """Clear the capability bounding and ambient sets (needs CAP_SETPCAP: do it before the uid drop)."""
    libc = ctypes.CDLL(None, use_errno=True)
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    for cap in range(last + 1):
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), f"PR_CAPBSET_DROP {cap} failed")
    libc.prctl(47, 4, 0, 0, 0)  # PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL (EINVAL on old kernels)


def clear_capabilities() -> None:
    """Empty the effective, permitted and inheritable sets (a uid drop leaves inheritable set)."""
    libc = ctypes.CDLL(None, use_errno=True)
    header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (_CapData * 2)()
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


def load_seccomp(path: str) -> None:
    """Load a compiled seccomp BPF program (struct sock_filter[]); needs no_new_privs first."""
    with open(path, "rb") as f:
        data = f.read()
    buf = ctypes.create_string_buffer(data, len(data))
    prog = _SockFprog(len(data) // 8, ctypes.cast(buf, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(22, 2, ctypes.byref(prog), 0, 0) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        raise OSError(ctypes.get_errno(), "loading the seccomp filter failed")


def _drop_uid(uid: int) -> None:
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (uid, uid, uid):
        raise OSError("uid drop did not take")


def run(spec: dict) -> None:
    confine(spec)
    argv = spec["argv"]
    os.execv(argv[0], argv)


def confine(spec: dict) -> None:
    """Every step of `spec` but the exec (also used by template.py on a forked kernel)."""
    for procs in spec.get("cgroup_procs", []):
        with open(procs, "w") as f:
            f.write(str(os.getpid()))
    if spec.get("nice", 0) > 0:
        os.nice(spec["nice"])  # lower CPU priority, inherited by all the kernel starts
    for name, value in spec.get("rlimits", {}).items():
        resource.setrlimit(RLIMITS[name], (value, value))
    for number, path in spec.get("fds", {}).items():
        fd = os.open(path, os.O_RDONLY)
        if fd != int(number):
            os.dup2(fd, int(number))  # inheritable
            os.close(fd)
        else:
            os.set_inheritable(fd, True)
    uid = spec.get("uid")
    if spec.get("drop_caps") and os.geteuid() == 0:
        drop_bounding_set()
    if uid is not None:
        _drop_uid(uid)
    if spec.get("drop_caps"):
        clear_capabilities()
    if spec.get("no_new_privs") and ctypes.CDLL(None).prctl(38, 1, 0, 0, 0) != 0:
        raise OSError("prctl(NO_NEW_PRIVS) failed")
    ll = spec.get("landlock")
    if ll:
        apply_landlock(ll["read"], ll["write"], ll.get("pin", []))
    if spec.get("seccomp"):
        load_seccomp(spec["seccomp"])


def main() -> None:
    try:
        run(json.loads(sys.argv[1]))
    except Exception as e:  # any failure: refuse to start the kernel
        sys.stderr.write(f"tirmath sandbox launcher: {type(e).__name__}: {e}\n")
        os._exit(97)


if __name__ == "__main__":
    main()
