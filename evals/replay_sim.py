"""The replay simulator: recorded samples arrive in completion order; policies decide when to stop.

Timing model (stated, so figures can be judged): each sample decodes at `speed` tokens/s (a
per-sample rate, as on a batched engine), at most `concurrency` samples run at once and the rest
queue; with `clock="latency"` a sample's recorded wall latency is its duration instead. Order 0
starts samples in recorded index order at their nominal speed; order k > 0 draws a random start
order and a per-sample speed factor exp(N(0, JITTER)) from a seed derived from (seed, k, problem),
so many orders show the spread of results. When a problem stops (policy reason or time budget)
at time T, a running sample has spent min(tokens, (T - start) x rate) tokens; queued ones none.

`simulate_problem` calls the same `StopPolicy.decide` the live agent calls, and optionally a
scheduler's `revise`; `kaggle_run` chains problems under a `TimeScheduler` with a global clock.
Not covered: reading sources (replay_sources.py) and printing (replay.py).
"""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from agent.budget import TimeScheduler
from agent.policy import StopPolicy
from agent.types import Trace
from agent.vote import WeightFn, vote, voters
from evals.replay_sources import RecordedProblem

JITTER = 0.25
Revise = Callable[[float, Sequence[Trace], int, float], float]


@dataclass(frozen=True)
class Timing:
    speed: float = 50.0  # tokens per second per running sample
    concurrency: int | None = None  # None: all samples of a problem at once
    clock: str = "tokens"  # "tokens" or "latency"


@dataclass(frozen=True)
class Arrival:
    index: int  # position in problem.samples
    start: float
    finish: float
    rate: float  # tokens per second for this sample


@dataclass(frozen=True)
class Outcome:
    answer: int | None
    correct: bool
    tokens: float
    seconds: float
    timed_out: bool
    used: int  # samples finished before the stop
    reason: str


def arrivals(problem: RecordedProblem, timing: Timing, order: int, seed: int) -> list[Arrival]:
    """Start/finish times of every sample of `problem` in arrival order `order`."""
    n = len(problem.samples)
    idx = list(range(n))
    factors = np.ones(n)
    if order > 0:
        rng = np.random.default_rng([seed, order, zlib.crc32(problem.id.encode())])
        idx = [int(i) for i in rng.permutation(n)]
        factors = np.exp(rng.normal(0.0, JITTER, size=n))
    slots = [0.0] * min(n, timing.concurrency or n)
    heapq.heapify(slots)
    out = []
    for i in idx:
        s = problem.samples[i]
        start = heapq.heappop(slots)
        tokens = max(s.trace.tokens, 1)
        if timing.clock == "latency" and s.latency:
            duration = s.latency / factors[i]
        else:
            duration = tokens / (timing.speed * factors[i])
        out.append(Arrival(i, start, start + duration, tokens / duration))
        heapq.heappush(slots, start + duration)
    return sorted(out, key=lambda a: (a.finish, a.index))


def _tokens_spent(problem: RecordedProblem, plan: list[Arrival], stop: float) -> float:
    total = 0.0
    for a in plan:
        tokens = problem.samples[a.index].trace.tokens
        total += min(float(tokens), max(0.0, stop - a.start) * a.rate)
    return total


def simulate_problem(
    problem: RecordedProblem,
    policy: StopPolicy,
    plan: list[Arrival],
    budget: float | None = None,
    revise: Revise | None = None,
    weight: WeightFn | None = None,
) -> Outcome:
    """Feed samples in arrival order to `policy`; stop on its reason or when `budget` runs out."""
    total = len(problem.samples)
    finished: list[Trace] = []
    stop, reason, timed_out = 0.0, "all_done", False
    for a in plan:
        while budget is not None and revise is not None and a.finish > budget:
            longer = revise(budget, voters(finished), total, budget)  # the deadline itself is a signal
            if longer <= budget:
                break
            budget = longer
        if budget is not None and a.finish > budget:
            stop, reason, timed_out = budget, "time", True
            break
        finished.append(problem.samples[a.index].trace)
        stop = a.finish
        if revise is not None and budget is not None:
            budget = revise(budget, voters(finished), total, a.finish)
        why = policy.decide(voters(finished), total, a.finish, budget)  # as agent.solve asks it
        if why:
            reason, timed_out = why, why == "time" and len(finished) < total
            break
    v = vote(finished, weight)
    good = v.answer is not None and v.answer in problem.correct_values
    return Outcome(v.answer, good, _tokens_spent(problem, plan, stop), stop, timed_out, len(finished), reason)


@dataclass(frozen=True)
class KaggleOutcome:
    outcomes: tuple[Outcome, ...]
    seconds: float
    lost: int  # timed out and wrong, where the same policy without a clock is right


def kaggle_run(
    problems: Sequence[RecordedProblem],
    policy: StopPolicy,
    scheduler: TimeScheduler,
    total_time: float,
    timing: Timing,
    order: int,
    seed: int,
    weight: WeightFn | None = None,
) -> KaggleOutcome:
    """Problems one at a time under a global clock; the scheduler sets each problem's budget."""
    time_left = total_time
    outs: list[Outcome] = []
    lost = 0
    for i, problem in enumerate(problems):
        plan = arrivals(problem, timing, order, seed + i)
        budget = scheduler.budget_for(i, len(problems) - i, time_left)
        out = simulate_problem(problem, policy, plan, budget, scheduler.revise, weight)
        if out.timed_out and not out.correct:
            free = simulate_problem(problem, policy, plan, None, None, weight)
            lost += int(free.correct)
        scheduler.record(out.seconds)
        time_left -= out.seconds
        outs.append(out)
    return KaggleOutcome(tuple(outs), total_time - time_left, lost)
