"""A pool of warm, isolated kernels: one fresh kernel per sample, destroyed when it is returned.

    pool = KernelPool(16, SandboxConfig(timeout=10))
    await pool.start()                      # probes isolation; UserError if it cannot be had
    async with pool.session() as s:         # hands out a warm kernel at once
        r = await s.run("x = 2**10; x", 5)  # ExecResult(status="ok", output="1024\\n", ...)
    await pool.close()

By default a kernel serves one session (one sample) and is then destroyed: its process tree,
cgroup, private /tmp and /dev/shm, descriptors and work directory go with it, so nothing a cell
did (patched libraries, import hooks, threads, files, settings) can reach another sample. The pool
keeps `config.spares` (default: `size`) kernels started and idle, and starts a replacement in the
background at every hand-out, so `acquire()` returns at once while starts keep up.

`SandboxConfig(reuse=True)` is the opt-in for trusted code: a returned kernel is reset in place
(kill leftover processes, restore the interpreter, wipe the work dir; a fresh kernel after
`max_uses`, a failed reset, or live threads) and handed out again; the pool then keeps exactly
`size` kernels. The reset does not reach everything (see _kernel_startup.py).

`size` bounds the sessions out at once: `acquire()` waits while `size` sessions are out. Sessions
are used from many asyncio tasks at once (one task per session). The kernel itself is in kernel.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from sandbox import isolation, template
from sandbox.cgroups import sweep_stale
from sandbox.config import SandboxConfig
from sandbox.errors import UserError
from sandbox.isolation import IsolationReport
from sandbox.kernel import ExecResult, ExecStatus, KernelSession, KernelStartError

__all__ = ["ExecResult", "ExecStatus", "KernelPool", "KernelSession", "SandboxConfig"]
log = logging.getLogger(__name__)


class _PoolClosed(Exception):
    """close() ran while a kernel was starting (the new kernel has been destroyed)."""


class KernelPool:
    """Up to `size` sessions out at once, each on a fresh kernel (or a reset one with `reuse`)."""

    def __init__(self, size: int, config: SandboxConfig | None = None) -> None:
        if size < 1:
            raise UserError(f"a kernel pool needs at least 1 kernel, got {size}")
        self.size = size
        self.config = config or SandboxConfig()
        self.reuse = self.config.reuse
        self.spares = size if self.reuse or self.config.spares is None else self.config.spares
        self.isolation: IsolationReport = IsolationReport("unprobed", ())
        self._ready: asyncio.Queue[KernelSession | BaseException] = asyncio.Queue()
        self._slots = asyncio.Semaphore(size)
        self._sessions: set[KernelSession] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._base = ""
        self.template: template.KernelTemplate | None = None
        self._started = self._closed = False
        self._start_limit = asyncio.Semaphore(max(2, os.cpu_count() or 2))
        # "destroyed" / "reset" / "replaced" -> count (diagnostics)
        self.recycled: dict[str, int] = {}
        self.retired_uids: set[int] = set()  # private uids of destroyed kernels (tests: strays)

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
            if cfg.template and template.usable(self.isolation):
                self.template = await self._start_template()
            sessions = await asyncio.gather(*(self._new_session() for _ in range(self.spares)))
        except BaseException:
            await self.close()
            raise
        for s in sessions:
            self._ready.put_nowait(s)

    async def _start_template(self) -> template.KernelTemplate | None:
        try:
            return await template.KernelTemplate.start(self.config, self._base)
        except (OSError, RuntimeError) as e:  # an optimisation only: cold starts still work
            log.warning("%s; every kernel will be cold-started", e)
            return None

    async def _new_session(self) -> KernelSession:
        async with self._start_limit:
            s = await KernelSession.create(self.isolation, self.config, self._base, self.template)
        self._sessions.add(s)
        if self._closed:  # close() ran while this kernel was starting
            await self._destroy(s)
            raise _PoolClosed
        return s

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refill(self, attempts: int = 2) -> None:
        """Start one warm kernel for the queue (a second try after a failure, e.g. a start that
        timed out on a busy box); a failure of both reaches the next acquire()."""
        s: KernelSession | BaseException = RuntimeError("no attempt")
        for _ in range(attempts):
            try:
                s = await self._new_session()
                break
            except _PoolClosed:
                return
            except Exception as e:
                log.warning("sandbox kernel could not be started: %s", e)
                s = e
        self._ready.put_nowait(s)

    @property
    def kernels(self) -> tuple[KernelSession, ...]:
        """Every live session of the pool, handed out or not (diagnostics, tests)."""
        return tuple(self._sessions)

    @property
    def available(self) -> int:
        """Warm sessions ready to hand out now."""
        return self._ready.qsize()

    async def acquire(self) -> KernelSession:
        """A warm, clean session (waits while `size` sessions are out or no kernel is ready yet)."""
        if not self._started or self._closed:
            raise RuntimeError("KernelPool.acquire() before start() or after close()")
        await self._slots.acquire()
        try:
            if not self.reuse:
                self._background(self._refill())  # the replacement for the one handed out now
            s = await self._ready.get()
        except BaseException:
            self._slots.release()
            raise
        if isinstance(s, BaseException):
            self._slots.release()
            raise KernelStartError(f"no sandbox kernel could be started: {s}") from s
        s.uses += 1
        return s

    async def release(self, s: KernelSession) -> None:
        """Give a session back: destroyed in the background (or, with `reuse`, reset and re-queued)."""
        self._slots.release()
        if self._closed or not self.reuse:
            self._count("destroyed")
            self._background(self._destroy(s))
        else:
            self._background(self._recycle(s))

    def _count(self, key: str) -> None:
        self.recycled[key] = self.recycled.get(key, 0) + 1

    async def _destroy(self, s: KernelSession) -> None:
        self._sessions.discard(s)
        await s.close()
        self.retired_uids |= s.uids

    async def _recycle(self, s: KernelSession) -> None:
        try:
            how = await s.recycle()
        except Exception as e:  # never lose a slot: start a fresh session instead
            log.warning("sandbox kernel could not be recycled (%s); starting a new one", e)
            await self._destroy(s)
            try:
                s, how = await self._new_session(), "replaced: recycle error"
            except _PoolClosed:
                return
        self._count(how.split(":")[0])
        if self._closed:
            await self._destroy(s)
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
        """Wait until every returned session is destroyed (or reset) and every refill started."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Kill every kernel and remove their directories and cgroups."""
        self._closed = True
        await self.wait_idle()
        await asyncio.gather(*(s.close() for s in list(self._sessions)), return_exceptions=True)
        self._sessions.clear()
        if self.template is not None:
            await self.template.close()
        while not self._ready.empty():
            self._ready.get_nowait()
        if self._base:
            shutil.rmtree(self._base, ignore_errors=True)

    async def __aenter__(self) -> KernelPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
