"""Stop policies: when is a problem's vote settled? One interface, live and in replay.

The live agent (`agent.solve`) and the replay simulator (`evals.replay`) both call
`policy.decide(finished, total, elapsed, budget)` each time a sample finishes, with the
finished voting samples in completion order; a returned reason stops the problem (the rest
of its samples are aborted), None lets it go on. Policies are stateless: the decision is a
function of the arguments only, so a replay reproduces the live decision exactly.

Every policy also stops when `budget` is set and `elapsed >= budget` (reason "time").

Specs for `make_policy` ("NAME[:params]"):
  fixed                  fixed-n majority: never stops early (the baseline).
  consistency:K/N        AIMO2 2nd-place style consistency: stop as soon as K of the first N
                         finished samples agree (e.g. 4/5, 5/7, 3/3); after N samples without
                         that agreement, run to the end.
  agree:K                AIMO3 style: stop as soon as any answer has K votes (default 3).
  posterior:P[:THETA]    sequential rule with an error target (alias "sprt", kept for old command
                         lines: it is a Bayesian posterior, not Wald's ratio test): stop when the
                         posterior probability that the current leader is still the vote winner
                         after all `total` samples is >= P (e.g. 0.95: the stated error is
                         1 - P). THETA (default 1) is the prior weight of a new, unseen answer;
                         larger is more cautious. See `leader_holds_probability`.

Not covered: weights (votes are counted, not weighted, for stopping), time scheduling across
problems (agent/budget.py).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from agent.errors import UserError
from agent.types import Trace


class StopPolicy(Protocol):
    @property
    def name(self) -> str:
        """The canonical spec, e.g. "agree:3" (recorded in Result.meta)."""
        ...

    def decide(self, finished: Sequence[Trace], total: int, elapsed: float, budget: float | None) -> str | None:
        """A reason to stop now, or None to go on. `total` = samples planned."""
        ...


def answer_counts(finished: Sequence[Trace]) -> Counter[int]:
    """Votes per integer answer among the finished samples."""
    return Counter(t.answer.value for t in finished if t.answer is not None and t.answer.value is not None)


def _time_up(elapsed: float, budget: float | None) -> str | None:
    return "time" if budget is not None and elapsed >= budget else None


@dataclass(frozen=True)
class Fixed:
    """Run every planned sample and vote (never stops early except for the time budget)."""

    name: str = "fixed"

    def decide(self, finished: Sequence[Trace], total: int, elapsed: float, budget: float | None) -> str | None:
        return _time_up(elapsed, budget)


@dataclass(frozen=True)
class Consistency:
    """Stop when `k` of the first `n` finished samples give the same answer."""

    k: int
    n: int

    @property
    def name(self) -> str:
        return f"consistency:{self.k}/{self.n}"

    def decide(self, finished: Sequence[Trace], total: int, elapsed: float, budget: float | None) -> str | None:
        if len(finished) <= self.n:
            top = answer_counts(finished).most_common(1)
            if top and top[0][1] >= self.k:
                return f"{top[0][1]} of first {len(finished)} agree on {top[0][0]}"
        return _time_up(elapsed, budget)


@dataclass(frozen=True)
class Agree:
    """Stop as soon as any answer has `k` votes."""

    k: int = 3

    @property
    def name(self) -> str:
        return f"agree:{self.k}"

    def decide(self, finished: Sequence[Trace], total: int, elapsed: float, budget: float | None) -> str | None:
        top = answer_counts(finished).most_common(1)
        if top and top[0][1] >= self.k:
            return f"{top[0][1]} agree on {top[0][0]}"
        return _time_up(elapsed, budget)


@functools.lru_cache(maxsize=65536)
def leader_holds_probability(
    counts: tuple[int, ...], abstain: int, remaining: int, theta: float = 1.0, draws: int = 4000, seed: int = 0
) -> float:
    """P(the current vote leader is still the winner once `remaining` more samples finish).

    `counts` are votes per answer in first-reached order; the leader and the winner are chosen
    as `agent.vote.vote` does with uniform weights (most votes, then the answer reached first).
    Posterior predictive of the remaining samples (a Polya urn / Chinese-restaurant process,
    exchangeable, so it is the Bayesian posterior under a Dirichlet-process prior): each sample
    abstains with probability (abstain + 1) / (finished + 2), else repeats an answer with
    probability proportional to its votes, or gives a new answer with weight `theta`.
    Monte Carlo with a fixed seed: deterministic and cached.
    """
    k = len(counts)
    leader = max(range(k), key=lambda i: (counts[i], -i)) if k else 0
    if remaining <= 0 or k == 0:
        return 1.0 if k else 0.0
    rng = np.random.default_rng(seed)
    table = np.zeros((draws, k + remaining))
    table[:, :k] = counts
    rows = np.arange(draws)
    votes = np.full(draws, float(sum(counts)))
    absent = np.full(draws, float(abstain))
    seen = np.full(draws, float(sum(counts) + abstain))
    fresh = np.zeros(draws, dtype=int)
    for _ in range(remaining):
        answering = rng.random(draws) >= (absent + 1.0) / (seen + 2.0)
        absent += ~answering
        seen += 1.0
        u = rng.random(draws) * (votes + theta)
        pick = (table.cumsum(axis=1) > u[:, None]).argmax(axis=1)
        new = u >= votes
        col = np.where(new, k + fresh, pick)
        table[rows[answering], col[answering]] += 1.0
        fresh += new & answering
        votes += answering
    return float((table.argmax(axis=1) == leader).mean())


@dataclass(frozen=True)
class Posterior:
    """Stop when P(current leader is the full-budget vote winner) >= `target` (error <= 1 - target)."""

    target: float = 0.95
    theta: float = 1.0
    seed: int = 0

    @property
    def name(self) -> str:
        return f"posterior:{self.target:g}" + (f":{self.theta:g}" if self.theta != 1.0 else "")

    def decide(self, finished: Sequence[Trace], total: int, elapsed: float, budget: float | None) -> str | None:
        counts = answer_counts(finished)  # insertion order = first-reached order
        remaining = total - len(finished)
        if counts and remaining > 0:
            c = tuple(counts.values())
            abstain = len(finished) - sum(c)
            prob = leader_holds_probability(c, abstain, remaining, self.theta, seed=self.seed)
            if prob >= self.target:
                lead = max(counts, key=lambda a: counts[a])
                return f"P(leader {lead} holds) = {prob:.3f} >= {self.target:g}"
        return _time_up(elapsed, budget)


def _ints(spec: str, text: str, sep: str) -> list[int]:
    try:
        return [int(x) for x in text.split(sep)]
    except ValueError:
        raise UserError(f"bad policy spec {spec!r}: expected integers in {text!r}") from None


def make_policy(spec: str | None) -> StopPolicy:
    """Parse "NAME[:params]" (see the module docstring); UserError on a bad spec."""
    spec = (spec or "fixed").strip()
    name, _, rest = spec.partition(":")
    if name == "fixed" and not rest:
        return Fixed()
    if name == "consistency":
        vals = _ints(spec, rest or "4/5", "/")
        if len(vals) != 2 or not (1 <= vals[0] <= vals[1]):
            raise UserError(f"bad policy spec {spec!r}: need consistency:K/N with 1 <= K <= N")
        return Consistency(vals[0], vals[1])
    if name == "agree":
        vals = _ints(spec, rest or "3", ":")
        if len(vals) != 1 or vals[0] < 1:
            raise UserError(f"bad policy spec {spec!r}: K must be >= 1")
        return Agree(vals[0])
    if name in ("posterior", "sprt"):
        parts = (rest or "0.95").split(":")
        try:
            target = float(parts[0])
            theta = float(parts[1]) if len(parts) > 1 else 1.0
        except ValueError:
            raise UserError(f"bad policy spec {spec!r}: need posterior:P[:THETA], P a probability") from None
        if not 0.5 <= target < 1.0 or theta <= 0 or len(parts) > 2:
            raise UserError(f"bad policy spec {spec!r}: need P in [0.5, 1) and THETA > 0")
        return Posterior(target, theta)
    raise UserError(f"unknown policy {spec!r}; choose fixed, consistency:K/N, agree:K, posterior:P")
