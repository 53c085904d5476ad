"""The sandbox's two interfaces as typed protocols, for callers that take a pool or a session
as an argument (the agent's TIR loop, training rollouts) and for test doubles that honour them.

`KernelPool` (sandbox.pool) and `KernelSession` (sandbox.kernel) implement them; `CellResult` is
the part of `sandbox.kernel.ExecResult` a caller reads. Not covered:
starting or isolating kernels.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


class CellResult(Protocol):
    """What a caller reads of a cell's result (sandbox.kernel.ExecResult has more)."""

    @property
    def status(self) -> str: ...

    @property
    def output(self) -> str: ...

    @property
    def seconds(self) -> float: ...

    @property
    def state_lost(self) -> bool: ...


@runtime_checkable
class SessionLike(Protocol):
    """One stateful kernel session: run a cell, get its result."""

    async def run(self, code: str, timeout: float | None = None) -> CellResult: ...


@runtime_checkable
class KernelPoolLike(Protocol):
    """Hands out one session per sample and takes it back."""

    async def acquire(self) -> SessionLike: ...

    async def release(self, s: Any) -> None:
        """Take back a session this pool handed out (typed Any: each pool takes its own kind)."""
        ...
