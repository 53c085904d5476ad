"""Progress events emitted by the rollout and solve loops, for live views and logs.

A single typed record with a `kind`; consumers ignore kinds they do not show. Emitting an
event never blocks generation: handlers must be quick and must not raise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from agent.types import Trace, Vote

EventKind = Literal["start", "text", "code", "output", "done", "vote", "stop"]


@dataclass(frozen=True)
class Event:
    """`index` is the sample index (-1 for problem-level events)."""

    kind: EventKind
    index: int = -1
    text: str = ""
    tokens: int = 0
    status: str | None = None
    trace: Trace | None = None
    vote: Vote | None = None


EventHandler = Callable[[Event], None]


def emit(handler: EventHandler | None, event: Event) -> None:
    if handler is not None:
        handler(event)
