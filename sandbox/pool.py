"""A pool of warm, isolated kernels: one session per sample, cleaned or replaced on return.

    pool = KernelPool(16, SandboxConfig(timeout=10))
    await pool.start()                      # probes isolation; UserError if it cannot be had
    async with pool.session() as s:         # hands out a warm kernel at once
        r = await s.run("x = 2**10; x", 5)  # ExecResult(status="ok", output="1024\\n", ...)
    await pool.close()

A returned session is recycled in the background (kill leftover processes, reset the
interpreter, wipe the work dir; or a fresh kernel after `max_uses`, a failed reset, or live
threads) before it goes back to the queue, so sessions never see each other's variables.
Sessions are used from many asyncio tasks at once (one task per session). The pool does not
grow: `acquire()` waits when all kernels are out. The kernel itself is in kernel.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator

from sandbox import isolation
from sandbox.cgroups import sweep_stale
from sandbox.config import SandboxConfig
from sandbox.errors import UserError
from sandbox.isolation import IsolationReport
from sandbox.kernel import ExecResult, ExecStatus, KernelSession

__all__ = ["ExecResult", "ExecStatus", "KernelPool", "KernelSession", "SandboxConfig"]
log = logging.getLogger(__name__)


class KernelPool:
    """`size` warm kernels sharing one SandboxConfig."""

    def __init__(self, size: int, config: SandboxConfig | None = None) -> None:
        if size < 1:
            raise UserError(f"a kernel pool needs at least 1 kernel, got {size}")
        self.size = size
        self.config = config or SandboxConfig()
        self.isolation: IsolationReport = IsolationReport("unprobed", ())
        self._ready: asyncio.Queue[KernelSession] = asyncio.Queue()
        self._sessions: set[KernelSession] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._base = ""
        self._started = self._closed = False
        self._start_limit = asyncio.Semaphore(max(2, os.cpu_count() or 2))
        self.recycled: dict[str, int] = {}  # "reset" / "replaced: why" -> count (diagnostics)

    async def start(self) -> None:
        """Probe isolation (UserError if unavailable and isolation is not "none"), start kernels."""
        if self._started:
            return
        cfg = self.config
        self.isolation = await asyncio.to_thread(isolation.resolve, cfg.isolation, cfg.bwrap)
        if self.isolation.level != "strict":
            log.warning("sandbox isolation is %s; missing: %s", self.isolation.level,
                        "; ".join(self.isolation.missing()))
        if self.isolation.cgroups is not None:
            await asyncio.to_thread(sweep_stale, self.isolation.cgroups)
        self._base = tempfile.mkdtemp(prefix="tirmath-sbx-")
        os.chmod(self._base, 0o711)
        self._started = True
        try:
            sessions = await asyncio.gather(*(self._new_session() for _ in range(self.size)))
        except BaseException:
            await self.close()
            raise
        for s in sessions:
            self._ready.put_nowait(s)

    async def _new_session(self) -> KernelSession:
        async with self._start_limit:
            s = await KernelSession.create(self.isolation, self.config, self._base)
        self._sessions.add(s)
        return s

    @property
    def kernels(self) -> tuple[KernelSession, ...]:
        """Every session of the pool, handed out or not (diagnostics, tests)."""
        return tuple(self._sessions)

    @property
    def available(self) -> int:
        """Warm sessions ready to hand out now."""
        return self._ready.qsize()

    async def acquire(self) -> KernelSession:
        """A warm, clean session (waits while every kernel is out or being recycled)."""
        if not self._started or self._closed:
            raise RuntimeError("KernelPool.acquire() before start() or after close()")
        s = await self._ready.get()
        s.uses += 1
        return s

    async def release(self, s: KernelSession) -> None:
        """Give a session back; it is cleaned in the background and then handed out again."""
        if self._closed:
            await s.close()
            return
        task = asyncio.create_task(self._recycle(s))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _recycle(self, s: KernelSession) -> None:
        try:
            how = await s.recycle()
        except Exception as e:  # never lose a slot: start a fresh session instead
            log.warning("sandbox kernel could not be recycled (%s); starting a new one", e)
            self._sessions.discard(s)
            await s.close()
            s, how = await self._new_session(), "replaced: recycle error"
        key = how.split(":")[0]
        self.recycled[key] = self.recycled.get(key, 0) + 1
        if self._closed:
            await s.close()
        else:
            self._ready.put_nowait(s)

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[KernelSession]:
        """`async with pool.session() as s:` acquire, then release on exit."""
        s = await self.acquire()
        try:
            yield s
        finally:
            await self.release(s)

    async def wait_idle(self) -> None:
        """Wait until every returned session has been recycled (tests, benchmarks)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Kill every kernel and remove their directories and cgroups."""
        self._closed = True
        await self.wait_idle()
        await asyncio.gather(*(s.close() for s in list(self._sessions)), return_exceptions=True)
        self._sessions.clear()
        if self._base:
            shutil.rmtree(self._base, ignore_errors=True)

    async def __aenter__(self) -> KernelPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
