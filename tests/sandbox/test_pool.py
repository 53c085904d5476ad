"""KernelPool behaviour with real kernels: fresh kernels per session, warm spares, the reuse
opt-in, concurrency, waiting, restarts, close. Cross-sample independence, property by property,
is in test_independence.py."""

from __future__ import annotations

import asyncio
import dataclasses
import os

import psutil
import pytest
import pytest_asyncio

from sandbox.config import SandboxConfig
from sandbox.errors import UserError
from sandbox.kernel import KernelStartError
from sandbox.pool import KernelPool
from tests.sandbox.helpers import SMALL, make_pool

DIRTY = """
import math, os, sys, decimal, tabnanny, sympy
x = 123
open('left.txt', 'w').write('from the last session')
math.pi = 3
sympy.Integer.tirmath_patch = 1
os.environ['TIRMATH_LEAK'] = '1'
sys.path.append('/nowhere')
sys.setrecursionlimit(77)
decimal.getcontext().prec = 3
os.chdir('/tmp')
"""
CHECK = """
import math, os, sys, decimal, sympy
print('x' in globals(), os.path.exists('left.txt'), math.pi > 3.14, hasattr(sympy.Integer, 'tirmath_patch'),
      'TIRMATH_LEAK' in os.environ, '/nowhere' in sys.path, sys.getrecursionlimit() == 77,
      decimal.getcontext().prec == 3, 'tabnanny' in sys.modules)
"""


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pool1() -> KernelPool:
    p = await make_pool(1)
    yield p
    await p.close()


CLEAN = "False False True False False False False False False\n"


async def test_next_session_sees_nothing_of_the_last(pool1: KernelPool) -> None:
    async with pool1.session() as s:
        r = await s.run(DIRTY)
        assert r.status == "ok", r
        first = s.all_pids()
    await pool1.wait_idle()
    async with pool1.session() as s:
        r = await s.run(CHECK)
        assert s.all_pids().isdisjoint(first)
    assert r.output == CLEAN, r
    assert pool1.recycled.get("destroyed", 0) >= 1 and "reset" not in pool1.recycled


async def test_released_kernel_is_destroyed_with_its_dirs_and_cgroup(pool1: KernelPool) -> None:
    async with pool1.session() as s:
        await s.run("import subprocess; subprocess.Popen(['sleep', '100'])", 10)
        kp = s._kp
        assert kp is not None
        pids, runtime, cgroup = s.all_pids(), kp.runtime, kp.cgroup
        assert len(pids) >= 2 and os.path.isdir(runtime)
    await pool1.wait_idle()
    alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert alive == [] and not os.path.exists(runtime)
    assert s not in pool1.kernels
    if cgroup is not None:
        assert not any(d.exists() for d in cgroup.dirs)


async def test_hand_out_comes_from_warm_spares() -> None:
    pool = await make_pool(2, dataclasses.replace(SMALL, spares=2))
    try:
        assert pool.available == 2 and len(pool.kernels) == 2
        warm = set(pool.kernels)
        s = await pool.acquire()
        assert s in warm and s.alive  # started before acquire() was called
        await pool.wait_idle()
        assert pool.available == 2 and len(pool.kernels) == 3  # a replacement was started
        await pool.release(s)
        await pool.wait_idle()
        assert pool.available == 2 and len(pool.kernels) == 2 and s not in pool.kernels
    finally:
        await pool.close()


async def test_reuse_opt_in_resets_the_kernel_in_place() -> None:
    pool = await make_pool(1, dataclasses.replace(SMALL, reuse=True))
    try:
        async with pool.session() as s:
            assert (await s.run(DIRTY)).status == "ok"
            first = s
        await pool.wait_idle()
        async with pool.session() as s:
            r = await s.run(CHECK)
            assert s is first and s.uses == 2
        assert r.output == CLEAN, r
        assert pool.recycled.get("reset", 0) == 1 and len(pool.kernels) == 1
    finally:
        await pool.close()


async def test_a_kernel_that_cannot_start_fails_acquire_loudly() -> None:
    pool = await make_pool(1, dataclasses.replace(SMALL, spares=0, start_timeout=0.001))
    try:
        with pytest.raises(KernelStartError, match="no sandbox kernel could be started"):
            await asyncio.wait_for(pool.acquire(), 60)
    finally:
        await pool.close()


async def test_kernel_died_between_cells_reports_restarted(pool1: KernelPool) -> None:
    async with pool1.session() as s:
        await s.run("y = 1\nimport os, threading\nthreading.Timer(0.2, os._exit, (1,)).start()")
        await asyncio.sleep(1.0)
        r = await s.run("print(6 * 7)")
        assert (r.status, r.state_lost, r.output) == ("restarted", True, "42\n"), r
        r = await s.run("print(6 * 7)")
        assert (r.status, r.state_lost) == ("ok", False)


async def test_cancelled_cell_does_not_keep_running(pool1: KernelPool) -> None:
    async with pool1.session() as s:
        task = asyncio.create_task(s.run("while True: pass", 60))
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        r = await s.run("print('after cancel')", 10)
        assert r.output == "after cancel\n" and r.state_lost, r


async def test_acquire_waits_while_every_kernel_is_out(pool1: KernelPool) -> None:
    s = await pool1.acquire()
    waiter = asyncio.create_task(pool1.acquire())
    await asyncio.sleep(0.3)
    assert not waiter.done()
    await pool1.release(s)
    s2 = await asyncio.wait_for(waiter, 30)
    assert (await s2.run("print(1)")).output == "1\n"
    await pool1.release(s2)


async def test_many_tasks_share_a_pool_without_mixing_state() -> None:
    pool = await make_pool(4)
    try:
        async def sample(i: int) -> str:
            async with pool.session() as s:
                await s.run(f"v = {i}")
                await s.run("import time; time.sleep(0.05)")
                return (await s.run("print(v)")).output

        outs = await asyncio.gather(*(sample(i) for i in range(16)))
        assert outs == [f"{i}\n" for i in range(16)]
    finally:
        await pool.close()


async def test_reuse_max_uses_replaces_the_kernel() -> None:
    pool = await make_pool(1, dataclasses.replace(SMALL, reuse=True, max_uses=1))
    try:
        async with pool.session() as s:
            first = s.all_pids()
            await s.run("print(1)")
        await pool.wait_idle()
        async with pool.session() as s:
            assert s.all_pids().isdisjoint(first)
        assert pool.recycled.get("replaced", 0) >= 1
    finally:
        await pool.close()


async def test_close_kills_every_process_and_removes_dirs() -> None:
    pool = await make_pool(2)
    pids: set[int] = set()
    for k in pool.kernels:
        pids |= k.all_pids()
    async with pool.session() as s:
        await s.run("import subprocess; subprocess.Popen(['sleep', '100'])")
    base = pool._base
    await pool.close()
    alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert alive == [] and pids
    assert not os.path.exists(base)


def test_pool_size_must_be_positive() -> None:
    with pytest.raises(UserError, match="at least 1"):
        KernelPool(0)


def test_spares_must_not_be_negative() -> None:
    with pytest.raises(UserError, match="spares"):
        SandboxConfig(spares=-1)


def test_fresh_kernels_are_the_default() -> None:
    pool = KernelPool(3)
    assert not pool.reuse and pool.spares == 3
    assert KernelPool(3, SandboxConfig(spares=6)).spares == 6
    assert KernelPool(3, SandboxConfig(reuse=True, spares=6)).spares == 3


async def test_kernels_run_at_lower_cpu_priority() -> None:
    """Model code must not starve the engine and the agent loop of CPU (SandboxConfig.nice)."""
    import os

    from sandbox.pool import KernelPool, SandboxConfig

    pool = KernelPool(1, SandboxConfig(nice=7))
    await pool.start()
    try:
        async with pool.session() as s:
            r = await s.run("import os; print(os.nice(0))")
        assert r.status == "ok" and int(r.output.strip()) == os.nice(0) + 7
    finally:
        await pool.close()
