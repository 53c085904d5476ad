"""Isolation layers, seen from inside real kernels: strict (bubblewrap), fallback (Landlock), none."""

from __future__ import annotations

import dataclasses
import os
import shutil

import pytest
import pytest_asyncio

from sandbox.errors import UserError
from sandbox.isolation import IsolationReport, Layer, probe, require
from sandbox.pool import KernelPool
from tests.sandbox.helpers import SMALL, Host, Listener, make_pool

INSIDE = """
import os, resource, socket
print('uid', os.getuid())
print('pid1', open('/proc/1/comm').read().strip())
print('host', socket.gethostname())
print('ifaces', sorted(n for _, n in socket.if_nameindex()))
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
    for name in ("workdir", "env", "rlimits", "network", "filesystem", "pid", "user", "cgroup", "cleanup"):
        assert name in names
    assert report.level == "strict", report.describe()
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
    assert kernel_cgroup is not None and kernel_cgroup.pids()


async def test_fallback_without_bubblewrap_still_blocks_network_and_writes(host: Host) -> None:
    config = dataclasses.replace(SMALL, bwrap="tirmath-no-such-bwrap")
    pool = await make_pool(1, config)
    listener = Listener()
    try:
        assert pool.isolation.bwrap is None and pool.isolation.level == "partial"
        assert any("Landlock" in line for line in pool.isolation.describe())
        async with pool.session() as s:
            net = await s.run(f"import socket\nsocket.create_connection(('127.0.0.1', {listener.port}), timeout=1)")
            write = await s.run(f"open('{host.plant}', 'w').write('x')")
            read = await s.run(f"print(open('{host.secret}').read())")
            ok = await s.run("open('mine.txt', 'w').write('fine')\nprint(open('mine.txt').read())")
        assert net.status == "error" and listener.accepted == 0, net
        assert write.status == "error" and host.plant.read_text() == host.plant_text
        assert read.status == "error" and "TOPSECRET" not in read.output
        assert ok.output == "fine\n"
    finally:
        listener.close()
        await pool.close()


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
