"""One isolated, stateful Jupyter kernel session: `await session.run(code, timeout) -> ExecResult`.

A session owns one kernel process at a time (see launch.py). State persists across its cells.
A cell that runs too long is interrupted (SIGINT); if it does not stop within the grace time,
the whole process tree is killed and a fresh kernel started in the background (the result says
`state_lost`). A kernel that dies (segfault, os._exit, OOM kill) is noticed within ~0.1 s and
replaced the same way; one found dead before a cell makes that cell's status "restarted".
Output is capped and made safe by output.py; a flooding cell is stopped. One cell at a time per
session (a lock); many sessions run concurrently in one event loop. Pooling is in pool.py: by
default a session serves one sample and is then closed; `recycle()` (reset in place) is the
`reuse` opt-in for trusted code.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import asdict, dataclass, replace
from queue import Empty
from typing import Any, Literal

import zmq.asyncio
from jupyter_client.asynchronous import AsyncKernelClient

from sandbox.config import SandboxConfig
from sandbox.isolation import IsolationReport
from sandbox.launch import KernelProcess, start_process
from sandbox.output import OutputCollector
from sandbox.template import KernelTemplate

ExecStatus = Literal["ok", "error", "timeout", "oom", "crashed", "restarted"]
POLL = 0.1  # seconds between liveness checks while a cell runs
LOST = "variables from earlier cells are lost"


@dataclass(frozen=True)
class ExecResult:
    """What one cell did. `output` is what the cell printed (capped, made safe) plus the last lines
    of its traceback; `note` is the sandbox's own explanation of a timeout, crash or restart."""

    status: ExecStatus
    output: str
    seconds: float
    truncated: bool = False
    error_name: str | None = None  # e.g. "ZeroDivisionError"
    state_lost: bool = False  # kernel was restarted: variables from earlier cells are gone
    note: str = ""  # the sandbox's own one-line explanation (timeout, crash, restart), not in output

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class KernelStartError(RuntimeError):
    """A kernel did not start or answer within the start timeout."""


_CONTEXT: zmq.asyncio.Context | None = None
RECONNECT_MS = 5  # zmq's default is 100 ms: the client connects before a fresh kernel has bound its sockets


def _context() -> zmq.asyncio.Context:
    """One zmq context for every kernel client, whose sockets retry a connection every 5 ms (a
    fresh kernel binds its sockets a few ms after the client connects; at zmq's default 100 ms
    that wait was most of a template kernel's start)."""
    global _CONTEXT
    if _CONTEXT is None or _CONTEXT.closed:
        _CONTEXT = zmq.asyncio.Context()
        _CONTEXT.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MS)
    return _CONTEXT


class KernelSession:
    """One sample's kernel. Create with `await KernelSession.create(report, config, base_dir)`."""

    def __init__(self, report: IsolationReport, config: SandboxConfig, base: str,
                 template: KernelTemplate | None = None) -> None:
        if config.reuse:  # the kernel snapshots its state at start so recycle() can reset it
            config = replace(config, extra_env=(*config.extra_env, ("TIRMATH_SANDBOX_RESET", "1")))
        self.report, self.config, self.base, self.template = report, config, base, template
        self._kp: KernelProcess | None = None
        self._kc: AsyncKernelClient | None = None
        self._lock = asyncio.Lock()
        self._restarting: asyncio.Task[None] | None = None
        self._lost = False  # restarted since the last cell: the next cell reports it
        self._oom_base = 0
        self.uses = 0  # sessions handed out on this kernel
        self.uids: set[int] = set()  # every private uid this session's kernels ran as
        self.start_seconds = 0.0

    @classmethod
    async def create(cls, report: IsolationReport, config: SandboxConfig, base: str,
                     template: KernelTemplate | None = None) -> KernelSession:
        s = cls(report, config, base, template)
        await s._start()
        return s

    # ---- process lifecycle -------------------------------------------------------------
    async def _start(self) -> None:
        t0 = time.monotonic()
        if self.template is not None:
            kp = await self.template.start_process(self.report, self.config, self.base)
        else:
            kp = await start_process(self.report, self.config, self.base)
        if kp.uid is not None:
            self.uids.add(kp.uid)
        kc = AsyncKernelClient(context=_context())
        kc.load_connection_info(kp.connection)  # type: ignore[arg-type]
        kc.start_channels(shell=True, iopub=True, stdin=False, hb=False, control=True)
        self._kp, self._kc = kp, kc
        try:
            await self._wait_ready(t0 + self.config.start_timeout)
        except BaseException:
            await self._stop()
            raise
        for _ in range(50):  # the process table can lag behind a kernel that already answers
            if kp.find_kernel() is not None:
                break
            await asyncio.sleep(0.02)
        self._oom_base = kp.oom_kills()
        self.start_seconds = time.monotonic() - t0

    async def _wait_ready(self, deadline: float) -> None:
        """kernel_info until the shell answers and IOPub delivers (so no output is missed)."""
        assert self._kp is not None and self._kc is not None
        shell_ok = iopub_ok = False
        while not (shell_ok and iopub_ok):
            if not self._kp.alive or time.monotonic() > deadline:
                why = "exited" if not self._kp.alive else "did not answer in time"
                raise KernelStartError(f"sandbox kernel {why}; its log ends: {self._kp.log_tail()}")
            self._kc.kernel_info()
            with contextlib.suppress(Empty):
                await self._kc.get_shell_msg(timeout=0.2)
                shell_ok = True
            with contextlib.suppress(Empty):
                while await self._kc.get_iopub_msg(timeout=0.05 if not shell_ok else 0.2):
                    iopub_ok = True
                    if not await self._kc.iopub_channel.msg_ready():
                        break

    async def _stop(self) -> None:
        if self._kc is not None:
            self._kc.stop_channels()
        if self._kp is not None:
            await self._kp.dispose()
        self._kp = self._kc = None

    async def _replace(self) -> None:
        await self._stop()
        await self._start()

    def _restart_in_background(self) -> None:
        self._lost = True
        self._restarting = asyncio.create_task(self._replace())

    async def _settle(self) -> None:
        """Wait for a background restart; start one if the kernel died meanwhile."""
        if self._restarting is not None:
            task, self._restarting = self._restarting, None
            await task
        if self._kp is None or not self._kp.alive:
            self._lost = True
            await self._replace()

    @property
    def alive(self) -> bool:
        return self._kp is not None and self._kp.alive

    @property
    def uid(self) -> int | None:
        return self._kp.uid if self._kp else None

    def host_pids(self) -> set[int]:
        """Host pids of the kernel and its wrappers (for tests and diagnostics)."""
        return set(self._kp.keep) if self._kp else set()

    def extra_pids(self) -> set[int]:
        """Host pids of processes a cell started that are still alive."""
        return self._kp.pids() - self._kp.keep if self._kp else set()

    def all_pids(self) -> set[int]:
        return self._kp.pids() if self._kp else set()

    async def close(self) -> None:
        if self._restarting is not None:
            self._restarting.cancel()
            with contextlib.suppress(BaseException):
                await self._restarting
            self._restarting = None
        await self._stop()

    # ---- running cells -------------------------------------------------------------------
    async def run(self, code: str, timeout: float | None = None) -> ExecResult:
        """Run one cell; never raises for anything the cell does."""
        async with self._lock:
            await self._settle()
            was_lost, self._lost = self._lost, False
            try:
                r = await self._execute(code, self.config.timeout if timeout is None else timeout)
            except asyncio.CancelledError:  # the caller gave up: never leave a cell running
                if self._kp is not None:
                    await self._kp.kill()
                self._restart_in_background()
                raise
            if was_lost and r.status in ("ok", "error"):
                note = f"the kernel had been restarted before this cell; {LOST}"
                r = ExecResult("restarted", r.output, r.seconds, r.truncated, r.error_name, True, note)
            return r

    async def _execute(self, code: str, timeout: float) -> ExecResult:
        assert self._kp is not None and self._kc is not None
        kp, kc, cfg = self._kp, self._kc, self.config
        t0 = time.monotonic()
        out = OutputCollector(cfg.output_chars, cfg.flood_chars, cfg.error_lines)
        self._oom_base = kp.oom_kills()  # OOM kills during this cell name its failure "oom"
        msg_id = kc.execute(code, store_history=True, allow_stdin=False, stop_on_error=False)
        stopped: str | None = None  # "timeout" | "flood" once interrupted
        deadline = t0 + timeout
        while True:
            now = time.monotonic()
            if now >= deadline:
                if stopped is not None:  # interrupt ignored: kill the tree, restart in background
                    return await self._killed(out, t0, stopped, timeout)
                stopped, deadline = "timeout", now + cfg.interrupt_grace
                self._interrupt()
                continue
            try:
                msg = await kc.get_iopub_msg(timeout=min(POLL, deadline - now))
            except Empty:
                if not kp.alive:
                    return await self._died(out, t0)
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "status" and content.get("execution_state") == "idle":
                break
            if stopped is None:
                out.add_message(kind, content)
                if out.flooded:
                    stopped, deadline = "flood", time.monotonic() + cfg.interrupt_grace
                    self._interrupt()
        await self._drain_reply(msg_id)
        if cfg.cleanup_each_cell:
            kp.kill_leftovers()
        return self._finish(out, t0, stopped, timeout)

    def _interrupt(self) -> None:
        """SIGINT to the kernel's host pid; if unknown, an interrupt_request on the control channel
        (ipykernel then signals itself), which also works through the bubblewrap wrapper."""
        assert self._kp is not None and self._kc is not None
        if not self._kp.interrupt():
            self._kc.control_channel.send(self._kc.session.msg("interrupt_request", {}))

    async def _drain_reply(self, msg_id: str) -> None:
        assert self._kc is not None
        with contextlib.suppress(Empty):
            for _ in range(100):
                reply = await self._kc.get_shell_msg(timeout=1.0)
                if reply["parent_header"].get("msg_id") == msg_id:
                    return

    def _finish(self, out: OutputCollector, t0: float, stopped: str | None, timeout: float) -> ExecResult:
        seconds = time.monotonic() - t0
        name = out.error_name
        if stopped == "timeout":
            out.error_text = ""
            note = f"the cell ran longer than {timeout:g} s and was interrupted"
            return ExecResult("timeout", out.render(), seconds, out.truncated, "TimeoutError", False, note)
        if stopped == "flood":
            out.error_text = ""
            note = f"the cell was stopped: it printed more than {self.config.flood_chars} characters"
            return ExecResult("error", out.render(), seconds, True, "OutputLimitExceeded", False, note)
        if name == "SystemExit" and out.error_text.rstrip().endswith(("SystemExit: 0", "SystemExit: None")):
            out.error_text = ""
            return ExecResult("ok", out.render(), seconds, out.truncated)
        if name == "MemoryError":
            return ExecResult("oom", out.render(), seconds, out.truncated, name)
        return ExecResult("error" if name else "ok", out.render(), seconds, out.truncated, name)

    async def _killed(self, out: OutputCollector, t0: float, stopped: str, timeout: float) -> ExecResult:
        seconds = time.monotonic() - t0
        assert self._kp is not None
        oom = self._kp.oom_kills() > self._oom_base  # memory thrash looks like a hang: name it
        await self._kp.kill()
        self._restart_in_background()
        self._lost = False  # this result already says so
        if oom:
            note = f"the kernel ran out of memory (cgroup OOM kill) and was restarted; {LOST}"
            return ExecResult("oom", out.render(), seconds, out.truncated, "MemoryError", True, note)
        if stopped == "flood":
            note = (f"the cell was stopped: it printed more than {self.config.flood_chars} characters; "
                    f"the kernel was restarted and {LOST}")
            return ExecResult("error", out.render(), seconds, True, "OutputLimitExceeded", True, note)
        note = (f"the cell ran longer than {timeout:g} s and did not stop when interrupted; "
                f"the kernel was restarted and {LOST}")
        return ExecResult("timeout", out.render(), seconds, out.truncated, "TimeoutError", True, note)

    async def _died(self, out: OutputCollector, t0: float) -> ExecResult:
        seconds = time.monotonic() - t0
        assert self._kp is not None
        code = self._kp.proc.returncode
        oom = self._kp.oom_kills() > self._oom_base or (self._kp.cgroup is None and code in (-9, 137))
        self._restart_in_background()
        self._lost = False
        if oom:
            how = "cgroup OOM kill" if self._kp.cgroup is not None else "SIGKILL, most likely the OOM killer"
            note = f"the kernel ran out of memory ({how}) and was restarted; {LOST}"
            return ExecResult("oom", out.render(), seconds, out.truncated, "MemoryError", True, note)
        note = f"the kernel died (exit status {code}) and was restarted; {LOST}"
        return ExecResult("crashed", out.render(), seconds, out.truncated, "KernelDied", True, note)

    # ---- pool support --------------------------------------------------------------------
    async def recycle(self) -> str:
        """With `config.reuse` only (trusted code): make this kernel clean for a new session by a
        reset in place, or replace it. Returns "reset" or "replaced: <why>". Without `reuse` the
        pool destroys a returned session (close()) and hands out a fresh kernel instead."""
        async with self._lock:
            with contextlib.suppress(Exception):
                await self._settle()
            why = ""
            if not self.alive:
                why = "kernel not running"
            elif self.uses >= self.config.max_uses:
                why = f"used {self.uses} times"
            else:
                assert self._kp is not None
                self._kp.kill_leftovers()
                r = await self._execute("import _tirmath; print(_tirmath.reset() or 'reset-ok')", 10.0)
                if r.status != "ok" or r.output.strip() != "reset-ok":
                    why = f"reset failed: {r.output.strip()[-200:]}"
            if why:
                await self._replace()
                self.uses = 0
            self._lost = False
            return f"replaced: {why}" if why else "reset"


