"""`solve(problem, backend, pool, config) -> Result`: the one composed entry point.

Starts the problem's samples concurrently (a fixed, seeded mix of CoT and TIR), never in
lock-step rounds: while one sample waits for its kernel the others keep the engine busy.
Each finished sample is handed to `on_trace` at once (for run stores), the weighted vote is
updated, and the stop policy is asked whether the problem is settled; if so the remaining
samples are cancelled and their engine requests aborted. A time budget sets a deadline that
every sample honours. Samples already done in an earlier, interrupted run are passed as
`skip` and count in the vote without being run again.

Not covered: loading problems or models (evals, backends), scheduling time across problems
(budget.py), how a single sample runs (rollout.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from agent.answers import is_correct
from agent.backends.base import Backend
from agent.config import SolveConfig
from agent.events import Event, EventHandler, emit
from agent.policy import StopPolicy, make_policy
from agent.rollout import Deadline, rollout
from agent.types import Answer, Mode, Problem, Result, Trace, Vote
from agent.vote import ENTROPY_TOP_K, WeightFn, make_weight, needs_entropy, vote

NON_VOTING = ("aborted", "error")
# revise(budget, finished, total, elapsed) -> new budget (agent.budget.TimeScheduler.revise)
ReviseFn = Callable[[float, Sequence[Trace], int, float], float]


def sample_seed(base_seed: int, problem_id: str, index: int) -> int:
    """An explicit, derived seed for one sample, so any sample can be replayed alone."""
    digest = hashlib.blake2b(f"{base_seed}:{problem_id}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % (2**31 - 1)


def plan_modes(samples: int, tir_ratio: float) -> list[Mode]:
    """Spread TIR samples evenly among CoT ones: index i is TIR when floor((i+1)r) > floor(ir)."""
    return ["tir" if int((i + 1) * tir_ratio + 1e-9) > int(i * tir_ratio + 1e-9) else "cot" for i in range(samples)]


def voters(traces: Sequence[Trace]) -> list[Trace]:
    """Traces whose answers count: not aborted, not failed."""
    return [t for t in traces if t.finish not in NON_VOTING]


async def solve(
    problem: Problem,
    backend: Backend,
    pool: Any,
    config: SolveConfig,
    policy: StopPolicy | None = None,
    weight: WeightFn | None = None,
    on_event: EventHandler | None = None,
    on_trace: Callable[[Trace], None] | None = None,
    skip: Sequence[Trace] = (),
    revise: ReviseFn | None = None,
) -> Result:
    """Run the problem's samples, vote, stop early when the policy says so, return the Result.

    With a time budget, `revise` (a time scheduler's) may extend the problem's budget each time
    a sample finishes and once more just before the deadline; running samples see the new one.
    """
    if needs_entropy(config.weight) and not config.rollout.logprobs:  # the entropy weight reads logprobs
        config = replace(config, rollout=replace(config.rollout, logprobs=ENTROPY_TOP_K))
    policy = policy or make_policy(config.policy)
    weight = weight or make_weight(config.weight)
    modes = plan_modes(config.samples, config.tir_ratio)
    if "tir" in modes and pool is None:
        raise ValueError("TIR samples need a kernel pool (set tir_ratio=0 for CoT only)")
    start = time.monotonic()
    budget = config.time_budget
    deadline = Deadline(start + budget) if budget else None
    done: list[Trace] = sorted(skip, key=lambda t: t.index)
    have = {t.index for t in done}
    todo = [i for i in range(config.samples) if i not in have]
    cancel = asyncio.Event()
    limit = asyncio.Semaphore(config.concurrency or max(1, len(todo)))

    leaders = _leaders(todo, modes) if config.warm_prefix else {}
    warm = {m: asyncio.Event() for m in set(modes)}
    for m, ev in warm.items():
        if m not in leaders:
            ev.set()

    async def run_one(i: int) -> Trace | None:
        mode = modes[i]
        if i not in leaders.values():
            await _wait_any(warm[mode], cancel)
        async with limit:
            if cancel.is_set():
                return None
            seed = sample_seed(config.seed, problem.id, i)
            handler = _first_text_sets(warm[mode], on_event) if leaders.get(mode) == i else on_event
            try:
                t = await rollout(problem, backend, pool, mode, config.rollout, i, seed, handler, deadline, cancel)
            finally:
                warm[mode].set()
            return replace(t, started=round(time.monotonic() - start - t.seconds, 3))

    def extend(elapsed: float) -> bool:
        nonlocal budget
        if revise is None or deadline is None or budget is None:
            return False
        new = revise(budget, voters(done), config.samples, elapsed)
        if new > budget:
            budget, deadline.at = new, start + new
            return True
        return False

    stop_reason = "all_done"
    reason = policy.decide(voters(done), config.samples, 0.0, budget) if done else None
    if reason:
        cancel.set()
        stop_reason = reason
    tasks = [asyncio.create_task(run_one(i)) for i in todo]
    watch = asyncio.create_task(_watchdog(deadline, extend, start)) if deadline and revise else None
    current = vote(voters(done), weight)
    try:
        for fut in asyncio.as_completed(tasks):
            t = await fut
            if t is None:
                continue
            done.append(t)
            if on_trace is not None:
                on_trace(t)
            counted = voters(done)
            current = vote(counted, weight)
            emit(on_event, Event("vote", t.index, vote=current))
            if cancel.is_set():
                continue
            extend(time.monotonic() - start)
            reason = policy.decide(counted, config.samples, time.monotonic() - start, budget)
            if reason:
                stop_reason = reason
                cancel.set()
                emit(on_event, Event("stop", text=reason))
    finally:
        for task in tasks:
            task.cancel()
        if watch is not None:
            watch.cancel()
    if stop_reason == "all_done" and any(t.finish == "time" for t in done):
        stop_reason = "time"
    return _result(problem, current, done, stop_reason, time.monotonic() - start, policy)


def _leaders(todo: Sequence[int], modes: Sequence[Mode]) -> dict[Mode, int]:
    """The first sample to run in each mode (only when others of that mode follow it)."""
    out: dict[Mode, int] = {}
    for m in set(modes):
        mine = [i for i in todo if modes[i] == m]
        if len(mine) > 1:
            out[m] = mine[0]
    return out


def _first_text_sets(event: asyncio.Event, inner: EventHandler | None) -> EventHandler:
    """An event handler that sets `event` on the first generated text, then passes events on."""

    def handler(ev: Event) -> None:
        if ev.kind == "text":
            event.set()
        emit(inner, ev)

    return handler


async def _wait_any(event: asyncio.Event, cancel: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(cancel.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


async def _watchdog(deadline: Deadline, extend: Callable[[float], bool], start: float) -> None:
    """Just before the deadline, ask the scheduler once more; keep going while it extends."""
    while True:
        await asyncio.sleep(max(0.0, deadline.left() - 0.2))
        if deadline.left() > 0.25:
            continue  # extended meanwhile by a finished sample
        if not extend(deadline.at - start):
            return


def _result(
    problem: Problem, v: Vote, done: list[Trace], stop_reason: str, seconds: float, policy: StopPolicy
) -> Result:
    correct = None
    if problem.answer is not None:
        ans = Answer(raw=str(v.answer), value=v.answer, source="boxed") if v.answer is not None else None
        correct = is_correct(ans, problem.answer, problem.modulus)
    return Result(
        problem=problem,
        vote=v,
        traces=tuple(sorted(done, key=lambda t: t.index)),
        stop_reason=stop_reason,
        seconds=round(seconds, 3),
        correct=correct,
        meta={"policy": getattr(policy, "name", type(policy).__name__)},
    )
