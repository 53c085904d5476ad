"""The kernel's system-call filter: a seccomp BPF program compiled once with libseccomp (pyseccomp).

`program(no_netns)` returns the compiled filter as bytes, or raises `SeccompUnavailable` saying
why (no pyseccomp, no libseccomp2). The same bytes serve both modes: bubblewrap loads them with
`--seccomp FD` (strict), and the kernel's launcher loads them itself after `no_new_privs`
(partial, see `_launch.load_seccomp`). Denied calls fail with EPERM (clone3 with ENOSYS, so the C
library falls back to clone, whose namespace flags are checked; AF_NETLINK sockets with EINVAL,
which libzmq survives), so a cell sees a PermissionError
and the session goes on. What it denies: everything a maths kernel never needs that reaches
beyond its own process (ptrace and process_vm_*, mount and the new mount API, keyrings, bpf,
perf, namespaces, modules, reboot/kexec, swap, chroot/pivot_root, acct, setting clocks,
personality changes, userfaultfd, io_uring, file handles, syslog) and every socket family but
AF_UNIX. Without a network namespace (partial mode) it also denies connect(), sendto() with an
address and sendmsg(), so host AF_UNIX sockets (/tmp, /run, /dev/log) are unreachable too: the
kernel's own IPC only binds and accepts. Only the native architecture is allowed; a syscall of
another ABI (int 0x80) kills the process. It does not cover what it does not list (e.g. a
kernel exploit through an allowed call): it is one layer among several.
"""

from __future__ import annotations

import errno
import functools
import os
import socket
import tempfile

DENIED = (
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "mount", "umount2", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "unshare", "setns",
    "reboot", "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "swapon", "swapoff", "pivot_root", "chroot", "acct", "settimeofday", "clock_settime", "clock_adjtime",
    "adjtimex", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "open_by_handle_at", "name_to_handle_at", "fanotify_init", "lookup_dcookie", "syslog", "quotactl",
    "quotactl_fd", "iopl", "ioperm", "vhangup", "sethostname", "setdomainname", "uselib", "nfsservctl",
)
NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000, 0x00000080)
PERSONALITY_QUERY = 0xFFFFFFFF
TIOCSTI, TIOCLINUX = 0x5412, 0x541C


class SeccompUnavailable(RuntimeError):
    """libseccomp or its Python binding is missing."""


def _filter(no_netns: bool):  # type: ignore[no-untyped-def]
    try:
        import pyseccomp as sc
    except (ImportError, OSError) as e:  # OSError: pyseccomp found no libseccomp.so.2
        raise SeccompUnavailable(f"pyseccomp/libseccomp not usable ({e}); `apt-get install -y libseccomp2` "
                                 "and `pip install pyseccomp`") from e
    f = sc.SyscallFilter(sc.ALLOW)
    deny = sc.ERRNO(errno.EPERM)
    for name in DENIED:
        try:
            f.add_rule(deny, name)
        except (OSError, ValueError):  # a call this architecture does not have
            continue
    for name in ("socket", "socketpair"):  # one rule per family value: libseccomp cannot AND two tests of one arg
        for family in range(socket.AF_NETLINK + 1):
            if family not in (socket.AF_UNIX, socket.AF_NETLINK):
                f.add_rule(deny, name, sc.Arg(0, sc.EQ, family))
        f.add_rule(deny, name, sc.Arg(0, sc.GE, socket.AF_NETLINK + 1))
        # EINVAL, not EPERM: libzmq takes a failed getifaddrs() with EINVAL as "no such interface"
        # and goes on (to a clean error), but aborts the kernel on any other errno
        f.add_rule(sc.ERRNO(errno.EINVAL), name, sc.Arg(0, sc.EQ, socket.AF_NETLINK))
    for flag in NAMESPACE_FLAGS:  # clone(CLONE_NEW*) makes namespaces like unshare does
        f.add_rule(deny, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")  # flags hidden in a struct: make libc use clone
    f.add_rule(deny, "personality", sc.Arg(0, sc.NE, PERSONALITY_QUERY))  # a query is harmless
    for req in (TIOCSTI, TIOCLINUX):
        f.add_rule(deny, "ioctl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, req))
    if no_netns:
        f.add_rule(deny, "connect")
        f.add_rule(deny, "sendto", sc.Arg(4, sc.NE, 0))
        f.add_rule(deny, "sendmsg")
        f.add_rule(deny, "sendmmsg")
    return f


@functools.lru_cache(maxsize=2)
def program(no_netns: bool) -> bytes:
    """The compiled BPF program (struct sock_filter[]) for this machine's architecture."""
    f = _filter(no_netns)
    with tempfile.TemporaryFile() as out:
        f.export_bpf(out)
        out.seek(0)
        data = out.read()
    if not data or len(data) % 8:
        raise SeccompUnavailable(f"libseccomp exported a malformed program ({len(data)} bytes)")
    return data


def write_program(path: str, no_netns: bool) -> str:
    """Write the program to `path` (mode 0644) for a launcher or bubblewrap to load."""
    data = program(no_netns)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path
