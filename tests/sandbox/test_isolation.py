"""Isolation layers, seen from inside real kernels: strict (bubblewrap), partial (bubblewrap hidden:
Landlock, seccomp, private uid from a Python mirror, no capabilities), none; the seccomp program."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_asyncio

from sandbox import command, seccomp
from sandbox.errors import UserError
from sandbox.isolation import IsolationReport, Layer, probe, require
from sandbox.pool import KernelPool
from sandbox.report import Found, build
from tests.sandbox.helpers import SMALL, Host, Listener, make_pool

INSIDE = """
import os, resource, socket
print('uid', os.getuid())
print('pid1', open('/proc/1/comm').read().strip())
print('host', socket.gethostname())
print('ifaces', sorted(line.split(':')[0].strip() for line in open('/proc/net/dev').readlines()[2:]))
print('root', sorted(os.listdir('/')))
print('etc', sorted(os.listdir('/etc')))
print('env', sorted(os.environ))
print('threads', os.environ.get('OMP_NUM_THREADS'), os.environ.get('OPENBLAS_NUM_THREADS'), repr(os.environ.get('CUDA_VISIBLE_DEVICES')))
print('as', resource.getrlimit(resource.RLIMIT_AS)[0] // 2**20, 'fsize', resource.getrlimit(resource.RLIMIT_FSIZE)[0] // 2**20,
      'nofile', resource.getrlimit(resource.RLIMIT_NOFILE)[0], 'core', resource.getrlimit(resource.RLIMIT_CORE)[0])
try:
    open('/usr/tirmath-probe', 'w')
    print('rootfs writable')
except OSError as e:
    print('rootfs', e.errno)
"""


def _lines(text: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in text.splitlines() if " " in line)


@pytest.fixture(scope="module")
def bwrap_present() -> None:
    if shutil.which("bwrap") is None:
        pytest.fail("bubblewrap is not installed: apt-get install -y bubblewrap")


def test_probe_reports_every_layer(bwrap_present: None) -> None:
    report = probe()
    names = [layer.name for layer in report.layers]
    for name in ("workdir", "env", "rlimits", "network", "filesystem", "pid", "ipc", "disk", "user",
                 "capabilities", "seccomp", "cgroup", "cleanup"):
        assert name in names
    assert report.level == "strict", report.describe()
    assert report.seccomp and report.ok("seccomp") and report.ok("capabilities")
    assert report.describe()[0] == "sandbox isolation: strict"


def _fake(level: str, ok: bool) -> IsolationReport:
    return IsolationReport(level, (Layer("network", ok, "why not"), Layer("pid", ok, "host pids visible")))


def test_strict_refuses_a_partial_machine() -> None:
    with pytest.raises(UserError, match="'strict' is not available.*host pids visible"):
        require(_fake("partial", False), "strict")


def test_auto_refuses_a_machine_without_isolation() -> None:
    with pytest.raises(UserError, match="--sandbox none"):
        require(_fake("none", False), "auto")


def test_none_is_accepted_and_marked_unisolated() -> None:
    report = require(_fake("none", False), "none")
    assert report.level == "none" and not report.ok("network")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def strict_pool(bwrap_present: None) -> KernelPool:
    os.environ["TIRMATH_TEST_HOST_SECRET"] = "do-not-pass"
    p = await make_pool(1, dataclasses.replace(SMALL, isolation="strict"))
    yield p
    await p.close()
    os.environ.pop("TIRMATH_TEST_HOST_SECRET", None)


async def test_strict_kernel_sees_a_sandbox(strict_pool: KernelPool) -> None:
    async with strict_pool.session() as s:
        r = await s.run(INSIDE)
        kernel_cgroup = s._kp.cgroup if s._kp else None
    got = _lines(r.output)
    assert got["uid"] != "0"
    assert got["pid1"] == "bwrap"
    assert got["host"] == "sandbox"
    assert got["ifaces"] == "['lo']"
    assert "TIRMATH_TEST_HOST_SECRET" not in got["env"] and "'HOME'" in got["env"]
    assert got["threads"] == "1 1 ''"
    assert got["as"].split() == ["768", "fsize", "16", "nofile", "256", "core", "0"]
    assert got["rootfs"] == "30"  # EROFS
    shown = set(ast.literal_eval(got["root"]))  # only system dirs, never /work, /home, /var, /run or the project
    assert shown <= {"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "root", "sbin", "sys", "tmp", "usr"}
    assert set(ast.literal_eval(got["etc"])) <= {os.path.basename(p) for p in command.ETC} and "shadow" not in got["etc"]
    assert kernel_cgroup is not None and kernel_cgroup.pids()


PARTIAL_INSIDE = """
import os
print('uid', os.getuid())
caps = {l.split(':')[0]: l.split()[1] for l in open('/proc/self/status') if l.startswith('Cap')}
print('caps', sorted(set(caps.values())))
for path in ('/', '/work', '/root', '/etc/hostname', '/dev/shm', '/proc/1/status', '/var'):
    try:
        os.listdir(path) if os.path.isdir(path) else open(path).read()
        print('readable', path)
    except OSError as e:
        print('denied', path, e.errno)
import numpy, sympy
print('imports', sympy.isprime(7), numpy.arange(3).sum())
"""


async def test_partial_without_bubblewrap_keeps_strict_promises(host: Host) -> None:
    config = dataclasses.replace(SMALL, bwrap="tirmath-no-such-bwrap")
    pool = await make_pool(1, config)
    listener = Listener()
    try:
        rep = pool.isolation
        assert rep.bwrap is None and rep.level == "partial" and rep.seccomp and rep.landlock_abi >= 1
        assert rep.ok("capabilities") and rep.ok("user") and rep.ok("network"), rep.describe()
        async with pool.session() as s:
            net = await s.run(f"import socket\nsocket.create_connection(('127.0.0.1', {listener.port}), timeout=1)")
            write = await s.run(f"open('{host.plant}', 'w').write('x')")
            read = await s.run(f"print(open('{host.secret}').read())")
            ok = await s.run("open('mine.txt', 'w').write('fine')\nprint(open('mine.txt').read())")
            inside = await s.run(PARTIAL_INSIDE)
            runtime, uid = os.stat(s._kp.runtime), s.uid
        assert net.status == "error" and listener.accepted == 0, net
        assert write.status == "error" and host.plant.read_text() == host.plant_text
        assert read.status == "error" and "TOPSECRET" not in read.output
        assert ok.output == "fine\n"
        lines = inside.output.splitlines()
        if os.geteuid() == 0:
            assert uid is not None and f"uid {uid}" in lines, inside.output
            assert (runtime.st_uid, runtime.st_mode & 0o777) == (uid, 0o700)
        assert "caps ['0000000000000000']" in lines, inside.output
        assert not [line for line in lines if line.startswith("readable")], inside.output
        assert "imports True 3" in lines, inside.output
    finally:
        listener.close()
        await pool.close()


def test_probe_with_bubblewrap_hidden_from_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As a Docker or Kaggle user has it: no bwrap on PATH at all."""
    monkeypatch.setenv("PATH", str(tmp_path))
    probe.cache_clear()
    try:
        report = probe()
    finally:
        probe.cache_clear()
    assert report.level == "partial" and report.bwrap is None, report.describe()
    assert report.ok("seccomp") and report.ok("filesystem") and not report.ok("disk") and not report.ok("pid")
    assert any("apt-get install -y bubblewrap" in m for m in report.missing())


def test_seccomp_program_denies_what_root_may_otherwise_do(tmp_path: Path) -> None:
    """The filter alone (no capability drop, no uid change): unshare(CLONE_NEWUSER) and an AF_INET
    socket, both allowed to any process here without it, fail with EPERM; AF_UNIX still works."""
    prog = seccomp.write_program(str(tmp_path / "f.bpf"), no_netns=True)
    assert os.path.getsize(prog) % 8 == 0 and os.path.getsize(prog) > 8 * 40
    code = ("import ctypes, socket\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            "print(libc.unshare(0x10000000), ctypes.get_errno())\n"
            "try:\n    socket.socket(socket.AF_INET)\nexcept PermissionError:\n    print('inet denied')\n"
            "socket.socket(socket.AF_UNIX).close()\nprint('unix ok')")
    spec = {"no_new_privs": True, "seccomp": prog, "argv": [sys.executable, "-I", "-S", "-c", code]}
    out = subprocess.run([sys.executable, "-I", "-S", command.LAUNCHER, json.dumps(spec)], capture_output=True,
                         text=True, timeout=30)
    assert out.stdout.split("\n")[:3] == ["-1 1", "inet denied", "unix ok"], (out.stdout, out.stderr)
    free = subprocess.run([sys.executable, "-I", "-S", "-c", code.replace("print('inet denied')", "pass")],
                          capture_output=True, text=True, timeout=30)
    assert free.stdout.startswith("0 0"), free.stdout  # without the filter the namespace is made


async def test_none_runs_unisolated_only_when_asked() -> None:
    pool = await make_pool(1, dataclasses.replace(SMALL, isolation="none"))
    listener = Listener()
    try:
        assert pool.isolation.level == "none"
        async with pool.session() as s:
            r = await s.run(f"import socket\nsocket.create_connection(('127.0.0.1', {listener.port}), timeout=2).close()")
        assert r.status == "ok", r
    finally:
        listener.close()
        await pool.close()


def test_a_refused_filter_degrades_strict_loudly() -> None:
    """bubblewrap works but the kernel refuses the seccomp program: not strict, and doctor says why."""
    found = Found(root=False, bwrap="/usr/bin/bwrap", no_caps=True, seccomp=False,
                  seccomp_why="the kernel refused the filter under bubblewrap: Invalid argument")
    report = build(found)
    assert report.level == "partial" and not report.seccomp
    assert any(m.startswith("seccomp: no syscall filter: the kernel refused") for m in report.missing())
    with pytest.raises(UserError, match="'strict' is not available.*seccomp"):
        require(report, "strict")
