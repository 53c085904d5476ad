"""`Solver`: the Python API. One engine (or server client) and one kernel pool, started once and
reused for many problems, from a plain script or from a Jupyter notebook.

    from agent import Solver
    with Solver(SolveConfig(samples=4)) as solver:
        result = solver.solve("What is 2 + 3?", time_budget=60)
        print(result.answer, result.to_dict())      # the object `tirmath solve --json` prints

The solver runs its own asyncio event loop in a background thread, so `solve()` is a plain
blocking call that works the same in a script and inside a running loop (Jupyter's): the
engine, the kernels and every sample live on that thread. `start()` returns at once and the
engine and kernels open in the background (`wait_ready()` waits and raises what went wrong,
e.g. a model that fails to load); `solve()` waits for them. `submit()` returns a
`concurrent.futures.Future` (cancel it to cut the problem short) and `asolve()` awaits one from
any event loop. Event and trace callbacks (`on_event`, `on_trace`) run on the solver's thread.

Not covered: loading problem sets, run stores and Kaggle (evals), how a problem is solved
(agent.solve), parsing flags (the CLI builds the settings and calls `Solver.solve`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

from agent.backends.base import Backend
from agent.errors import UserError
from agent.events import EventHandler
from agent.solve import ReviseFn, SolveConfig, plan_modes
from agent.types import Problem, Result, Trace

BackendOpener = Callable[[], Awaitable[Backend]]
PoolOpener = Callable[[int], Awaitable[Any]]
CLOSE_TIMEOUT = 120.0


def as_problem(problem: Problem | str, *, id: str | None = None, answer: str | None = None,
               modulus: int | None = None) -> Problem:
    """A Problem from text or a Problem; the keywords, when given, override its fields."""
    if isinstance(problem, str):
        if not problem.strip():
            raise UserError("the problem text is empty")
        problem = Problem(id=id or "problem", text=problem)
    elif id is not None:
        problem = replace(problem, id=id)
    if answer is not None:
        problem = replace(problem, answer=answer)
    if modulus is not None:
        problem = replace(problem, modulus=modulus)
    return problem


class Solver:
    """Holds a backend, a kernel pool and a SolveConfig; solves problems one call at a time.

    `model`, `server`, `engine` and `engine_options` go to `agent.backends.open_backend`;
    `sandbox` is the kernel isolation ("auto", "strict", "none"); `kernels` the pool size
    (default: the TIR samples in flight). `open_backend` / `open_pool` replace how the backend
    and pool are opened (custom backends, tests). With `start=False`, call `start()` yourself.
    """

    def __init__(self, config: SolveConfig | None = None, *, model: str | None = None,
                 server: str | None = None, engine: str = "vllm", engine_options: dict[str, Any] | None = None,
                 sandbox: str = "auto", kernels: int | None = None, open_backend: BackendOpener | None = None,
                 open_pool: PoolOpener | None = None, start: bool = True) -> None:
        self.config = config or SolveConfig()
        self.model, self.server, self.engine = model, server, engine
        self.engine_options = dict(engine_options or {})
        self.sandbox = sandbox
        n_tir = plan_modes(self.config.samples, self.config.tir_ratio).count("tir")
        self.kernels = kernels if kernels is not None else min(n_tir, self.config.concurrency or n_tir)
        if self.kernels < 0:
            raise UserError("kernels must be 0 or more")
        self._open_backend, self._open_pool = open_backend, open_pool
        self.backend: Backend | None = None
        self.pool: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready: concurrent.futures.Future[None] | None = None
        self._closed = False
        if start:
            self.start()

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> Solver:
        """Start the solver's thread and open the kernels and the engine there; returns at once."""
        if self._closed:
            raise RuntimeError("this Solver is closed")
        if self._ready is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="tirmath-solver", daemon=True)
            self._thread.start()
            self._ready = asyncio.run_coroutine_threadsafe(self._open(), self._loop)
        return self

    async def _open(self) -> None:
        if self.kernels:
            self.pool = await (self._open_pool or _default_pool(self.sandbox))(self.kernels)
        if self._open_backend is not None:
            self.backend = await self._open_backend()
        else:
            from agent.backends import open_backend

            self.backend = await open_backend(model=self.model, server=self.server, engine=self.engine,
                                              **self.engine_options)

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until the engine and kernels are up; raise what failed (UserError for a bad model).

        `TimeoutError` when `timeout` seconds pass first (the start goes on)."""
        if self._ready is None:
            self.start()
        assert self._ready is not None
        try:
            self._ready.result(timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"the solver is not ready after {timeout} s") from None

    @property
    def ready(self) -> bool:
        """True once the engine and kernels are up (False while starting or after a failed start)."""
        return self._ready is not None and self._ready.done() and self._ready.exception() is None

    def close(self) -> None:
        """Close the engine and the kernels and stop the thread. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(CLOSE_TIMEOUT)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(CLOSE_TIMEOUT)
            if not thread.is_alive():
                loop.close()

    async def _shutdown(self) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.cancel()
        try:
            if self.backend is not None:
                await self.backend.close()
        finally:
            if self.pool is not None:
                await self.pool.close()

    def __enter__(self) -> Solver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- solving ----------------------------------------------------------------------------

    def submit(self, problem: Problem | str, *, time_budget: float | None = None, config: SolveConfig | None = None,
               modulus: int | None = None, answer: str | None = None, id: str | None = None,
               on_event: EventHandler | None = None, on_trace: Callable[[Trace], None] | None = None,
               skip: Sequence[Trace] = (), revise: ReviseFn | None = None) -> concurrent.futures.Future[Result]:
        """Start solving on the solver's thread; a Future of the Result (cancel it to stop).

        `config` replaces the solver's SolveConfig for this call; `time_budget` (seconds) its
        budget. `skip` are samples already done (they count without running again), `revise`
        a time scheduler's budget revision (see agent.solve.solve)."""
        prob = as_problem(problem, id=id, answer=answer, modulus=modulus)
        cfg = config or self.config
        if time_budget is not None:
            if time_budget <= 0:
                raise UserError(f"time_budget must be positive, got {time_budget}")
            cfg = replace(cfg, time_budget=time_budget)
        if self._closed:
            raise RuntimeError("this Solver is closed")
        self.start()
        assert self._loop is not None
        coro = self._solve(prob, cfg, on_event, on_trace, skip, revise)
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def _solve(self, problem: Problem, config: SolveConfig, on_event: EventHandler | None,
                     on_trace: Callable[[Trace], None] | None, skip: Sequence[Trace],
                     revise: ReviseFn | None) -> Result:
        from agent.solve import solve

        assert self._ready is not None
        await asyncio.wrap_future(self._ready)
        assert self.backend is not None
        if self.pool is None and "tir" in plan_modes(config.samples, config.tir_ratio):
            raise UserError("this Solver has no kernels (started with kernels=0 or a CoT-only config); "
                            "use tir_ratio=0 or start it with kernels")
        return await solve(problem, self.backend, self.pool, config, on_event=on_event, on_trace=on_trace,
                           skip=skip, revise=revise)

    def solve(self, problem: Problem | str, *, timeout: float | None = None, **kwargs: Any) -> Result:
        """Solve one problem and return its Result (see `submit` for the keywords).

        `timeout` (seconds, wall) cancels the problem and raises TimeoutError; an interrupt
        (Ctrl-C) cancels it too. Prefer `time_budget`, which stops samples and still votes."""
        fut = self.submit(problem, **kwargs)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise TimeoutError(f"problem not solved within {timeout} s") from None
        except BaseException:
            fut.cancel()
            raise

    async def asolve(self, problem: Problem | str, **kwargs: Any) -> Result:
        """`solve` for async code: awaits the problem on the caller's loop."""
        fut = self.submit(problem, **kwargs)
        try:
            return await asyncio.wrap_future(fut)
        except asyncio.CancelledError:
            fut.cancel()
            raise


def _default_pool(sandbox: str) -> PoolOpener:
    async def open_pool(size: int) -> Any:
        from sandbox.pool import KernelPool, SandboxConfig

        pool = KernelPool(size, SandboxConfig(isolation=sandbox))
        await pool.start()
        return pool

    return open_pool
