"""Adversarial cells, one property each, against a real isolated kernel pool, in both modes.

Each mode has one pool per module: "strict" (bubblewrap) and "partial" (bubblewrap hidden, as a
Docker container or Kaggle notebook has it: Landlock, seccomp, private uid, no capabilities).
Every case runs in a session from its mode's pool, after a marker variable was set. After the
case: the session (or its replacement) answers the next cell correctly, the marker survived
exactly when the case keeps state, a concurrent sibling session still has its own variable,
planted host files, shared memory, semaphore and listeners are untouched, and no process runs as
a kernel's uid outside the kernels themselves. A case holds in both modes unless it says which.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from sandbox.pool import KernelPool
from tests.sandbox.helpers import (
    SMALL,
    Host,
    HostSemaphore,
    Listener,
    UdpListener,
    UnixListener,
    make_pool,
    stray_processes,
)

MODES = ("strict", "partial")
CONFIGS = {"strict": dataclasses.replace(SMALL, isolation="strict"),
           "partial": dataclasses.replace(SMALL, bwrap="tirmath-hidden-bwrap")}  # as if not installed

ANY = ("ok", "error", "timeout", "oom", "crashed", "restarted")
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


@dataclass(frozen=True)
class Case:
    id: str
    code: str
    status: tuple[str, ...]
    state: str = "any"  # "kept" | "lost" | "any"
    present: tuple[str, ...] = ()  # substrings the output must contain
    absent: tuple[str, ...] = ()  # substrings the output must not contain
    timeout: float = 2.0
    modes: tuple[str, ...] = MODES


FORK_BOMB = """
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
"""
SIGINT_IGNORED = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"
SWALLOW = "while True:\n    try:\n        while True: pass\n    except KeyboardInterrupt:\n        pass"
DAEMON = """
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(1000)
    os._exit(0)
print('parent done')
"""
CHILD_MEMORY = """
import os
kids = []
for i in range(3):
    pid = os.fork()
    if pid == 0:
        try:
            b = b'x' * (450 * 2**20)
        finally:
            os._exit(0)
    kids.append(pid)
print(sorted(os.waitpid(k, 0)[1] != -1 for k in kids))
"""
CGROUP_OOM = """
import subprocess, sys, time
hog = b'x' * (350 * 2**20)
kids = [subprocess.Popen([sys.executable, '-c', "b = b'x' * (280 * 2**20); import time; time.sleep(10)"])
        for _ in range(3)]
time.sleep(8)
print('survived')
"""
FLOOD = "for i in range(10**6):\n    print('x' * 100)"

CASES = [
    # time
    Case("busy-loop", "while True: pass", ("timeout",), "kept"),
    Case("sleep", "import time\ntime.sleep(100)", ("timeout",), "kept"),
    Case("sigint-ignored", SIGINT_IGNORED, ("timeout",), "lost"),
    Case("keyboardinterrupt-swallowed", SWALLOW, ("timeout",)),
    Case("long-c-call-big-power", "x = 7**(10**8)", ("timeout",)),
    Case("alarm-default-kills-kernel", "import signal, time\nsignal.alarm(1)\ntime.sleep(5)", ("crashed",), "lost"),
    Case("alarm-with-handler", "import signal, time\ndef h(*a): raise TimeoutError('alarm')\n"
         "signal.signal(signal.SIGALRM, h)\nsignal.alarm(1)\ntime.sleep(5)", ("error",), "kept", ("alarm",)),
    Case("libc-sleep", "import ctypes\nctypes.CDLL(None).sleep(100)", ("timeout",)),
    Case("sleep-printing", "import time\nfor i in range(100):\n    print(i, flush=True)\n    time.sleep(0.1)",
         ("timeout",), "kept", ("0\n1\n2\n",)),
    # memory
    Case("huge-bytearray", "b = bytearray(10**11)", ("oom",), "kept"),
    Case("huge-string", "s = ' ' * 2**40", ("oom",), "kept"),
    Case("numpy-huge", "import numpy as np\na = np.ones((10**6, 10**5))", ("oom",), "kept"),
    Case("slow-growth", "l = []\nwhile True:\n    l.append(bytearray(10**7))", ("oom", "timeout")),
    Case("recursion-default", "def f(n): return f(n + 1)\nf(0)", ("error",), "kept", ("RecursionError",)),
    Case("recursion-unlimited", "import sys\nsys.setrecursionlimit(10**8)\ndef f(n): return f(n + 1)\nf(0)",
         ("crashed", "error", "oom", "timeout")),
    Case("memory-in-children", CHILD_MEMORY, ANY),
    # the OOM killer takes the kernel (the largest process); under memory thrash it may hang first
    Case("cgroup-oom-kills-kernel", CGROUP_OOM, ("oom",), "lost", (), ("survived",), timeout=10.0),
    # processes
    Case("fork-bomb", FORK_BOMB, ("timeout",)),
    Case("daemon-setsid-double-fork", DAEMON, ("ok",), "kept", ("parent done",)),
    Case("background-subprocess", "import subprocess\np = subprocess.Popen(['sleep', '1000'])\nprint('started')",
         ("ok",), "kept", ("started",)),
    Case("multiprocessing-pool", "from multiprocessing import Pool\nwith Pool(2) as p:\n    print(p.map(abs, [-1, -2]))",
         ("ok",), "kept", ("[1, 2]",), modes=("strict",)),
    Case("multiprocessing-pool-left-open", "from multiprocessing import Pool\np = Pool(2)\nprint(p.map(abs, [-3]))",
         ("ok",), "kept", ("[3]",), modes=("strict",)),
    # partial mode has no private /dev/shm, so Landlock denies it: no semaphores (doctor says so)
    Case("multiprocessing-no-semaphores", "from multiprocessing import Pool\nPool(2)", ("error",), "kept",
         ("PermissionError",), modes=("partial",)),
    Case("background-thread", "import threading, time\ndef spin():\n    while True: time.sleep(0.01)\n"
         "threading.Thread(target=spin, daemon=True).start()\nprint('spawned')", ("ok",), "kept", ("spawned",)),
    Case("kill-parent", "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nprint('still here')", ANY),
    Case("kill-everything", "import os, signal\nos.kill(-1, signal.SIGKILL)", ANY),
    Case("os-exit", "import os\nos._exit(1)", ("crashed",), "lost"),
    Case("segfault-ctypes", "import ctypes\nctypes.string_at(0)", ("crashed",), "lost"),
    Case("abort", "import os\nos.abort()", ("crashed",), "lost"),
    Case("sigterm-self", "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\nimport time\ntime.sleep(3)",
         ("crashed", "timeout"), "lost"),
    Case("exit-builtin", "print('before')\nexit()", ("ok",), "kept", ("before",)),
    Case("sys-exit-zero", "import sys\nsys.exit(0)", ("ok",), "kept"),
    Case("sys-exit-three", "import sys\nsys.exit(3)", ("error",), "kept", ("SystemExit: 3",)),
    # filesystem
    Case("write-planted-file", "open('{plant}', 'w').write('hacked')", ("error",), "kept"),
    Case("write-etc", "open('/etc/tirmath-pwned', 'w').write('x')", ("error",), "kept"),
    Case("read-planted-secret", "print(open('{secret}').read())", ("error",), "kept", (), ("TOPSECRET",)),
    Case("list-root-home", "import os\nprint(sorted(os.listdir('/root')))", ("ok", "error"), "kept", (),
         (".ssh", ".bashrc")),
    Case("fill-one-file", "with open('big', 'wb') as f:\n    while True:\n        f.write(b'x' * 2**20)",
         ("error",), "kept", ("File too large",)),
    Case("fill-disk-many-files", "i = 0\nwhile True:\n    open(f'f{{i}}', 'wb').write(b'x' * 2**20)\n    i += 1",
         ("error",), "kept", ("No space left",), modes=("strict",)),  # partial: see test_partial_names_no_disk_quota
    Case("symlink-out", "import os\nos.symlink('/etc/passwd', 'p')\nopen('p', 'a').write('x')", ("error",), "kept"),
    # network
    Case("connect-host-listener", "import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)",
         ("error",), "kept"),
    Case("dns", "import socket\nsocket.getaddrinfo('example.com', 443)", ("error",), "kept"),
    Case("pip-install", "import subprocess, sys\nr = subprocess.run([sys.executable, '-m', 'pip', 'install', "
         "'--retries', '0', '--timeout', '1', '--no-cache-dir', 'tirmath-no-such-package'], capture_output=True)\n"
         "print('rc', r.returncode)", ("ok",), "kept", ("rc ",), ("rc 0",), timeout=20.0),
    Case("raw-socket", "import socket\nsocket.socket(socket.AF_INET, socket.SOCK_RAW, 1)", ("error",), "kept"),
    Case("udp-to-host-listener", "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
         "s.sendto(b'leak', ('127.0.0.1', {udp_port}))", ("error",), "kept", ("PermissionError",)),
    Case("packet-socket", "import socket\nsocket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)", ("error",), "kept"),
    Case("netlink-socket", "import socket\nsocket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)", ("error",), "kept"),
    Case("host-unix-socket", "import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect('{unix}')\nprint('connected')",
         ("error",), "kept", (), ("connected",)),
    # secrets and other processes
    Case("etc-shadow", "print(open('/etc/shadow').read())", ("error",), "kept", (), ("root:",)),
    Case("host-environ", "print(open('/proc/{hostpid}/environ').read())", ("error",), "kept", (),
         ("TIRMATH_TEST_HOST_SECRET",)),
    Case("host-cmdline", "print(open('/proc/{hostpid}/cmdline').read())", ("error",), "kept", (), ("pytest",)),
    Case("capabilities-empty", "print(''.join(l for l in open('/proc/self/status') if l.startswith('Cap')))",
         ("ok",), "kept", tuple(f"{c}:\t0000000000000000" for c in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"))),
    Case("host-dev-shm-file", "print(open('{shm}').read())\nopen('{shm}', 'w').write('pwned')", ("error",), "kept",
         (), ("host shm secret",)),
    Case("host-semaphore", "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nlibc.sem_open.restype = ctypes.c_void_p\n"
         "p = libc.sem_open(b'{sem}', 0)\nassert p, ('sem_open failed', ctypes.get_errno())\nlibc.sem_wait(ctypes.c_void_p(p))\n"
         "print('taken')", ("error",), "kept", (), ("taken",)),
    Case("sibling-runtime-dir", "import os\nprint(os.listdir('{sib_runtime}'))", ("error",), "kept", (), ("conn.json",)),
    Case("sibling-shell-socket", "import socket\nfor i in range(50):\n    s = socket.socket(socket.AF_UNIX)\n"
         "    s.connect('{sib_runtime}/s-1')\nprint('flooded')", ("error",), "kept", (), ("flooded",)),
    Case("proc-other-kernels", "import os\nfound = []\nfor p in os.listdir('/proc'):\n    try:\n"
         "        found.append(open(f'/proc/{{p}}/cmdline').read())\n    except OSError:\n        pass\n"
         "print('FOUND-SIBLING' if any('{sib_runtime}' in c for c in found) else 'none')",
         ("ok", "error"), "kept", (), ("FOUND-SIBLING",)),
    # I/O
    Case("input", "input('? ')", ("error",), "kept", ("StdinNotImplementedError",)),
    Case("100mb-output", FLOOD, ("error",), "kept", ("xxxx",)),
    Case("one-10mb-line", "print('y' * 10**7)", ("error",), "kept", ("yyyy", "characters of output cut")),
    Case("close-stdout", "import sys\nsys.stdout.close()", ANY, "kept"),
    Case("close-fds-1-2", "import os\nos.close(1)\nos.close(2)", ("ok",), "kept"),
    Case("odd-unicode", "print('\\x00\\x07\\x1b[31mred\\x1b[0m é 😀 \\u202e \\x9b' + chr(0xd800) + 'end')", ("ok", "error"), "kept"),
    Case("image", "from IPython.display import display\ndisplay({{'image/png': '" + PNG + "'}}, raw=True)",
         ("ok",), "kept", ("image/png output omitted",)),
]


def _syscall(nr: int, *args: object) -> str:
    """A cell making one raw system call and raising OSError(errno) when it fails."""
    a = ", ".join([f"ctypes.c_long({nr})"] + [repr(x) if isinstance(x, bytes) else f"ctypes.c_long({x})"
                                              for x in args])
    return ("import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            f"r = libc.syscall({a})\ne = ctypes.get_errno()\n"
            "if r == -1:\n    raise OSError(e, os.strerror(e))\nprint('allowed', r)")


# x86_64 numbers; each call is one seccomp denial (many would succeed for any uid without it)
SECCOMP = {
    "ptrace-traceme": (101, 0, 0, 0, 0), "unshare-user-ns": (272, 0x10000000), "setns": (308, -1, 0),
    "mount": (165, b"none", b"/tmp", b"tmpfs", 0, 0), "keyctl": (250, 0, -3, 1), "add-key": (248, b"user", b"k", b"v", 1, -3),
    "bpf": (321, 0, 0, 0), "perf-event-open": (298, 0, 0, -1, -1, 0), "userfaultfd": (323, 1),
    "io-uring-setup": (425, 1, 0), "personality-no-aslr": (135, 0x0040000), "reboot": (169, 0, 0, 0, 0),
    "chroot": (161, b"/"), "clock-settime": (227, 0, 0), "init-module": (175, 0, 0, b""), "swapon": (167, b"/tmp/x", 0),
}
CASES += [Case(f"seccomp-{name}", _syscall(*args), ("error",), "kept", ("PermissionError: [Errno 1] Operation not permitted",))
          for name, args in SECCOMP.items()]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pool(request: pytest.FixtureRequest) -> KernelPool:
    os.environ["TIRMATH_TEST_HOST_SECRET"] = "do-not-pass"
    p = await make_pool(3, CONFIGS[request.param])
    assert p.isolation.level == request.param, p.isolation.describe()
    yield p
    await p.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def sibling(pool: KernelPool):
    s = await pool.acquire()
    r = await s.run("sib = 12345")
    assert r.status == "ok"
    yield s
    await pool.release(s)


def _check_safe(text: str) -> None:
    for ch in text:
        o = ord(ch)
        assert ch in "\n\t" or (o >= 32 and not 0x7F <= o <= 0x9F), f"control character {o:#x} in output"
        assert not 0xD800 <= o <= 0xDFFF, "lone surrogate in output"
    assert "\x1b" not in text


@dataclass(frozen=True)
class Plants:
    host: Host
    tcp: Listener
    udp: UdpListener
    unix: UnixListener
    shm: Path
    sem: HostSemaphore


@pytest.fixture
def plants(host: Host, listener: Listener, udp: UdpListener, unix_listener: UnixListener, shm_file: Path,
           semaphore: HostSemaphore) -> Plants:
    return Plants(host, listener, udp, unix_listener, shm_file, semaphore)


RUNS = [(mode, c) for mode in MODES for c in CASES if mode in c.modes]


@pytest.mark.parametrize(("pool", "case"), RUNS, ids=[f"{m}-{c.id}" for m, c in RUNS], indirect=["pool"])
async def test_adversarial_cell(case: Case, pool: KernelPool, sibling, plants: Plants) -> None:
    host, listener = plants.host, plants.tcp
    code = case.code.format(plant=host.plant, secret=host.secret, port=listener.port, udp_port=plants.udp.port,
                            unix=plants.unix.path, shm=plants.shm, sem=plants.sem.name, hostpid=os.getpid(),
                            sib_runtime=sibling._kp.runtime)
    async with pool.session() as s:
        assert (await s.run("marker = 7")).status == "ok"
        r = await s.run(code, case.timeout)
        assert r.status in case.status, (r.status, r.output[-500:], r.note)
        for text in case.present:
            assert text in r.output, (text, r.output[-500:])
        for text in case.absent:
            assert text not in r.output, text
        _check_safe(r.output)
        if case.state != "any":
            assert r.state_lost == (case.state == "lost"), r
        after = await s.run("print(marker)")
        if case.state == "kept":
            assert after.output == "7\n", after
        elif case.state == "lost":
            assert after.error_name == "NameError", after
        answer = await s.run("print(6 * 7)")
        assert (answer.status, answer.output) == ("ok", "42\n"), answer
        assert stray_processes(pool) == []
    await pool.wait_idle()  # the returned session is clean again: no process but the kernel
    assert all(not k.extra_pids() for k in pool.kernels), [k.extra_pids() for k in pool.kernels]
    sib = await sibling.run("print(sib)")
    assert (sib.status, sib.output) == ("ok", "12345\n"), sib
    assert host.plant.read_text() == host.plant_text
    assert listener.accepted == 0
    assert plants.udp.received() == 0 and plants.unix.accepted() == 0
    assert plants.shm.read_text() == "host shm secret" and plants.sem.value() == 1


@pytest.mark.parametrize("pool", ["partial"], indirect=True)
async def test_partial_names_no_disk_quota(pool: KernelPool) -> None:
    """Without bubblewrap there is no private tmpfs: doctor names the missing total quota and
    the per-file limit still holds (the many-files case would fill the host's disk)."""
    assert not pool.isolation.ok("disk") and "apt-get install -y bubblewrap" in " ".join(pool.isolation.missing())
    async with pool.session() as s:
        r = await s.run("with open('big', 'wb') as f:\n    f.write(b'x' * 17 * 2**20)")
    assert r.status == "error" and "File too large" in r.output, r
