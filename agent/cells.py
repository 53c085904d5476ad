"""Running one code cell for a sample, shared by the fenced and the harmony TIR loops.

`Deadline` (a problem's shared wall-clock end), `run_cell` (run code in the sample's kernel
session; on a cancel the cell is left to finish in the background), `output_lines` (the tool
output the model reads: head and tail kept when long, timeouts, crashes, out-of-memory and lost
state told in plain words), `release_in_background` (hand a session back once its last cell
ended) and `token_entropy` (the top-k entropy of one generated token). Not covered: generation,
parsing the model's calls, budgets (agent/rollout.py, agent/rollout_harmony.py).
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
