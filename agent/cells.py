"""Running one code cell for a sample, shared by the fenced and the harmony TIR loops.

`Deadline` (a problem's shared wall-clock end), `run_cell` (run code in the sample's kernel
session; on a cancel the cell is left to finish in the background), `output_lines` (the tool
output the model reads: head and tail kept when long, timeouts, crashes, out-of-memory and lost
state told in plain words), `release_in_background` (hand a session back once its last cell
ended) and `token_entropy` (the top-k entropy of one generated token). Also the two loops' one
engine request: `EngineRequest` (a stream that is closed, and aborted on the engine unless it
ended by itself, whichever way its block is left) and `stream_stop` (the stops every chunk is
checked for: the engine's finish, the deadline, the cancel). Not covered: parsing the model's
output or calls, budgets (agent/rollout.py, agent/rollout_harmony.py).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

_RELEASING: set[asyncio.Future] = set()  # sessions being handed back in the background


class _Holder(Protocol):
    running: asyncio.Future | None


@dataclass
class Deadline:
    """An absolute `time.monotonic()` deadline, shared by a problem's samples; solve may extend it."""

    at: float

    def passed(self) -> bool:
        return time.monotonic() > self.at

    def left(self) -> float:
        return self.at - time.monotonic()


class EngineRequest:
    """One streamed engine request, used as `async with EngineRequest(...) as req: async for ch in
    req.stream: ...`; the caller sets `how` when it stops reading ("length" when the stream ran
    out). Leaving the block closes the stream, and aborts the engine request when it did not end
    by itself: `how` still "aborted" (an exception, a cancel), "time" or "answer". A coroutine
    closed outside a running loop (GeneratorExit) awaits nothing."""

    ABORT = ("aborted", "time", "answer")

    def __init__(self, backend: Any, ids: Sequence[int], params: Any, rid: str) -> None:
        self.backend, self.rid = backend, rid
        self.how = "aborted"  # until the stream ends or the caller stops it
        self.stream = backend.stream(ids, params, rid)

    async def __aenter__(self) -> EngineRequest:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is GeneratorExit:
            return
        await self.stream.aclose()
        if self.how in self.ABORT:
            await self.backend.abort(self.rid)


def stream_stop(ch: Any, deadline: Deadline | None, cancel: asyncio.Event | None) -> str:
    """Why a loop stops after this chunk for reasons of the engine or the problem ("" to go on):
    the engine's finish reason, then the deadline, then the cancel (a cancel set because the
    time ran out is still "time")."""
    if ch.finish_reason:
        return str(ch.finish_reason)
    if deadline is not None and deadline.passed():
        return "time"
    if cancel is not None and cancel.is_set():
        return "aborted"
    return ""


def token_entropy(top: Sequence[tuple[int, float]]) -> float:
    """-sum p log p over the top-k alternatives of one generated token (nats)."""
    return -sum(math.exp(lp) * lp for _, lp in top if lp > -math.inf)


_STATUS_NOTES = {
    "timeout": "[the cell ran longer than {timeout:g} s and was stopped]",
    "oom": "[the cell ran out of memory and was stopped]",
    "crashed": "[the Python kernel crashed]",
    "restarted": "[the Python kernel was restarted]",
}


def output_lines(result: Any, limit: int, timeout: float) -> list[str]:
    """A sandbox ExecResult as the lines the model reads: the output (head and tail kept) and
    plain-words notes on timeouts, crashes, lost state and empty output."""
    body = (result.output or "").rstrip("\n")
    if len(body) > limit:
        head, tail = body[: limit // 2], body[-limit // 2 :]
        body = f"{head}\n... [{len(body) - len(head) - len(tail)} characters cut] ...\n{tail}"
    lines = [body] if body else []
    if result.status in _STATUS_NOTES:
        lines.append(_STATUS_NOTES[result.status].format(timeout=timeout))
    if getattr(result, "state_lost", False) or result.status in ("crashed", "restarted"):
        lines.append("[all variables and imports from earlier cells were lost]")
    if not lines:
        lines.append("[no output; print() the values you need]")
    return lines


async def run_cell(
    st: _Holder, session: Any, code: str, timeout: float, cancel: asyncio.Event | None
) -> Any | None:
    """Run code in the session; None if `cancel` fired first (the cell then ends in the background)."""
    run = asyncio.ensure_future(session.run(code, timeout=timeout))
    if cancel is None:
        return await run
    waiter = asyncio.ensure_future(cancel.wait())
    done, _ = await asyncio.wait({run, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if run in done:
        return run.result()
    st.running = run
    return None


def release_in_background(pool: Any, session: Any, running: asyncio.Future | None) -> None:
    """Release `session` to `pool` once `running` (a cell left running after a cancel) ended."""
    task = asyncio.ensure_future(_release_later(pool, session, running))
    _RELEASING.add(task)  # keep a reference until it is done (asyncio holds only weak ones)
    task.add_done_callback(_RELEASING.discard)


async def _release_later(pool: Any, session: Any, running: asyncio.Future | None) -> None:
    """Give the session back once any cell still running on it (after a cancel) has ended."""
    if running is not None:
        try:
            await running
        except Exception:
            pass
    await pool.release(session)
