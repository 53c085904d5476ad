"""Time scheduling across problems: how long may this problem take? Live and in replay.

The Kaggle setting: N problems, T seconds, one problem at a time, no going back. A scheduler
is asked `budget_for(problem_index, problems_left, time_left)` when a problem starts, may
`revise(budget, finished, total, elapsed)` the problem's budget each time a sample finishes and
when the deadline is reached (a difficulty estimate from early signals; the caller keeps going
while the revised budget is larger), and is told `record(problem_seconds)` at the end.

Specs for `make_scheduler(spec, total_time, problems)`:
  flat                   every problem gets total_time / problems, never more (the baseline);
                         time a problem does not use is lost.
  bank[:F[:X]]           banking: each problem gets an equal share of the time still left,
                         time_left / problems_left, so what easy problems save goes to later
                         ones. `revise` lets a hard-looking problem stretch up to F x (default
                         2.0) its share, never past what leaves X (default 0.5) of a share for
                         each problem still to come.
  aimo3[:B[:H]]          the AIMO3 notebooks' rule: budget = clamp(time_left - (remaining - 1) * B,
                         B, H): everything but B seconds for each problem still to come, at
                         least B and at most H. B and H are seconds (defaults 0.6 and 2.5 x
                         total_time / problems); `revise` keeps the budget.

Difficulty (`difficulty(finished, total)`, 0 easy .. 1 hard): the disagreement among the first
finished samples (1 - top answer share among them), raised when finished samples gave no
answer (cut at the token cap, a sign of a hard problem); 1 when nothing has finished by the
deadline. Not covered: per-sample token caps
(agent/rollout.py) and when to stop sampling (agent/policy.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from agent.errors import UserError
from agent.types import Trace


class TimeScheduler(Protocol):
    @property
    def name(self) -> str: ...

    def budget_for(self, problem_index: int, problems_left: int, time_left: float) -> float: ...

    def revise(self, budget: float, finished: Sequence[Trace], total: int, elapsed: float) -> float: ...

    def record(self, problem_seconds: float) -> None: ...


def difficulty(finished: Sequence[Trace], total: int) -> float:
    """0 (easy) .. 1 (hard) from early signals: answer disagreement and samples without an answer."""
    if not finished:
        return 1.0  # asked with nothing finished (at the deadline): nothing came back in time
    values = [t.answer.value for t in finished if t.answer is not None and t.answer.value is not None]
    no_answer = (len(finished) - len(values)) / len(finished)
    if not values:
        return 1.0
    top = Counter(values).most_common(1)[0][1]
    disagreement = 1.0 - top / len(values)
    return min(1.0, disagreement + 0.5 * no_answer)


@dataclass
class FlatScheduler:
    """total_time / problems for each problem; unused time is not carried over."""

    total_time: float
    problems: int
    name: str = "flat"
    spent: list[float] = field(default_factory=list)

    def budget_for(self, problem_index: int, problems_left: int, time_left: float) -> float:
        return max(0.0, min(self.total_time / self.problems, time_left))

    def revise(self, budget: float, finished: Sequence[Trace], total: int, elapsed: float) -> float:
        return budget

    def record(self, problem_seconds: float) -> None:
        self.spent.append(problem_seconds)


@dataclass
class BankingScheduler:
    """An equal share of the time left; hard-looking problems may stretch to `stretch` shares."""

    stretch: float = 2.0
    reserve: float = 0.5
    name: str = "bank"
    spent: list[float] = field(default_factory=list)
    _share: float = 0.0
    _cap: float = 0.0

    def budget_for(self, problem_index: int, problems_left: int, time_left: float) -> float:
        left = max(problems_left, 1)
        self._share = max(0.0, time_left) / left
        keep = self.reserve * self._share * (left - 1)
        self._cap = max(self._share, min(self.stretch * self._share, time_left - keep))
        return self._share

    def revise(self, budget: float, finished: Sequence[Trace], total: int, elapsed: float) -> float:
        """Stretch the budget with the difficulty estimate; never shrink it, never past the cap."""
        d = difficulty(finished, total)
        wanted = self._share * (1.0 + (self.stretch - 1.0) * d)
        return max(budget, min(wanted, self._cap))

    def record(self, problem_seconds: float) -> None:
        self.spent.append(problem_seconds)


@dataclass
class ClampScheduler:
    """budget = clamp(time_left - (problems_left - 1) * base, base, high) (AIMO3 notebooks)."""

    base: float
    high: float
    name: str = "aimo3"
    spent: list[float] = field(default_factory=list)

    def budget_for(self, problem_index: int, problems_left: int, time_left: float) -> float:
        wanted = time_left - (max(problems_left, 1) - 1) * self.base
        return max(0.0, min(max(wanted, self.base), self.high, time_left))

    def revise(self, budget: float, finished: Sequence[Trace], total: int, elapsed: float) -> float:
        return budget

    def record(self, problem_seconds: float) -> None:
        self.spent.append(problem_seconds)


def _clamp_scheduler(spec: str, rest: str, total_time: float, problems: int) -> ClampScheduler:
    try:
        vals = [float(x) for x in rest.split(":")] if rest else []
    except ValueError:
        raise UserError(f"bad scheduler spec {spec!r}: aimo3[:B[:H]] takes seconds") from None
    share = total_time / problems
    base = vals[0] if vals else 0.6 * share
    high = vals[1] if len(vals) > 1 else max(2.5 * share, base)
    if len(vals) > 2 or base <= 0 or high < base:
        raise UserError(f"bad scheduler spec {spec!r}: aimo3[:B[:H]] with 0 < B <= H (seconds)")
    return ClampScheduler(base, high)


def make_scheduler(spec: str, total_time: float, problems: int) -> TimeScheduler:
    """Parse "flat", "bank[:F[:X]]" or "aimo3[:B[:H]]"; UserError on a bad spec."""
    name, _, rest = spec.strip().partition(":")
    if total_time <= 0 or problems < 1:
        raise UserError(f"scheduler needs a positive time and at least one problem (got {total_time}, {problems})")
    if name == "flat" and not rest:
        return FlatScheduler(total_time, problems)
    if name == "bank":
        try:
            vals = [float(x) for x in rest.split(":")] if rest else []
        except ValueError:
            raise UserError(f"bad scheduler spec {spec!r}: bank[:F[:X]] takes numbers") from None
        if len(vals) > 2 or (vals and vals[0] < 1.0) or (len(vals) > 1 and vals[1] < 0):
            raise UserError(f"bad scheduler spec {spec!r}: bank[:F[:X]] with F >= 1, X >= 0")
        return BankingScheduler(
            stretch=vals[0] if vals else 2.0, reserve=vals[1] if len(vals) > 1 else 0.5
        )
    if name == "aimo3":
        return _clamp_scheduler(spec, rest, total_time, problems)
    raise UserError(f"unknown scheduler {spec!r}; choose flat, bank[:F[:X]] or aimo3[:B[:H]]")
