"""Features of one trace that vote weights read: its last printed integer, clean code, agreement.

Pure functions of a `Trace`; used by the hand-made weights (agent.vote) and the fitted ones
(agent.weights). Not covered: weighting or voting itself.
"""

from __future__ import annotations

from agent.answers import normalize_integer
from agent.types import Trace


def last_printed_int(trace: Trace) -> int | None:
    """The integer on the last non-empty line of the trace's last code output, if any."""
    outputs = [s.text for s in trace.steps if s.kind == "output"]
    if not outputs:
        return None
    text = outputs[-1].replace("```output", "").replace("```", "")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return None
    return normalize_integer(lines[-1])


def code_clean(trace: Trace) -> bool:
    """The sample called the tool at least once and every cell finished with status "ok"."""
    statuses = trace.tool_statuses
    return trace.tool_calls > 0 and bool(statuses) and all(s == "ok" for s in statuses)


def printed_matches(trace: Trace) -> bool:
    """The last printed integer equals the final answer (modulo-insensitive for AIMO's 0..999)."""
    if trace.answer is None or trace.answer.value is None:
        return False
    printed = last_printed_int(trace)
    if printed is None:
        return False
    v = trace.answer.value
    return printed == v or (0 <= v < 1000 and printed % 1000 == v)
