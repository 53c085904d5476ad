"""`solve(problem, backend, pool, config) -> Result`: the one composed entry point.

Starts the problem's samples concurrently (a fixed, seeded mix of CoT and TIR, spread over the
prompt variants of `prompts`, with the thought-switching penalty on a `tip_ratio` share of each
group when `tip` is set: see `plan_samples`), never in lock-step rounds: while one sample waits for its kernel the others keep the engine busy.
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
from dataclasses import dataclass, field, replace
from typing import Any

from agent.answers import is_correct
from agent.backends.base import Backend
from agent.events import Event, EventHandler, emit
from agent.policy import StopPolicy, make_policy
from agent.prompt_variants import PromptVariant
from agent.rollout import Deadline, RolloutConfig, rollout
from agent.tip import TipSettings
from agent.types import Answer, Mode, Problem, Result, Trace, Vote
from agent.vote import WeightFn, make_weight, vote

NON_VOTING = ("aborted", "error")
# revise(budget, finished, total, elapsed) -> new budget (agent.budget.TimeScheduler.revise)
ReviseFn = Callable[[float, Sequence[Trace], int, float], float]


@dataclass(frozen=True)
class SolveConfig:
    """How one problem is attacked."""

    samples: int = 8  # samples per problem
    tir_ratio: float = 0.5  # share of samples in TIR mode (the rest plain CoT)
    seed: int = 0  # base seed; each sample's seed is derived from it, the problem id and its index
    time_budget: float | None = None  # wall seconds for the problem (None: no limit)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    policy: str = "fixed"  # stop policy spec, see agent.policy.make_policy
    weight: str = "uniform"  # vote weight spec, see agent.vote.make_weight
    concurrency: int | None = None  # samples in flight at once (None: all)
    # Start one sample per mode first and the rest once its prompt is prefilled, so they reuse
    # its KV blocks through the prefix cache instead of all prefilling the same prompt at once.
    warm_prefix: bool = True
    tip: TipSettings | None = None  # thought-switching penalty settings (None: off)
    tip_ratio: float = 1.0  # share of samples (in each mode and prompt) that get TIP when `tip` is set
    prompts: tuple[PromptVariant, ...] = ()  # prompt variants to mix (empty: the family's own)

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ValueError("samples must be at least 1")
        if not 0.0 <= self.tir_ratio <= 1.0:
            raise ValueError("tir_ratio must be between 0 and 1")
        if not 0.0 <= self.tip_ratio <= 1.0:
            raise ValueError("tip_ratio must be between 0 and 1")


@dataclass(frozen=True)
class SamplePlan:
    """What one sample runs: its mode, its prompt variant (index into `prompts`) and TIP on/off."""

    mode: Mode
    prompt: int = 0
    tip: bool = False


def sample_seed(base_seed: int, problem_id: str, index: int) -> int:
    """An explicit, derived seed for one sample, so any sample can be replayed alone."""
    digest = hashlib.blake2b(f"{base_seed}:{problem_id}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % (2**31 - 1)


def plan_modes(samples: int, tir_ratio: float) -> list[Mode]:
    """Spread TIR samples evenly among CoT ones: index i is TIR when floor((i+1)r) > floor(ir)."""
    return ["tir" if int((i + 1) * tir_ratio + 1e-9) > int(i * tir_ratio + 1e-9) else "cot" for i in range(samples)]


def _spread(n: int, ratio: float) -> list[bool]:
    return [int((i + 1) * ratio + 1e-9) > int(i * ratio + 1e-9) for i in range(n)]


def plan_samples(samples: int, tir_ratio: float, n_prompts: int = 1, tip_ratio: float = 0.0) -> list[SamplePlan]:
    """Modes as `plan_modes`; within each mode, prompt variants in turn; within each (mode,
    variant) group, TIP spread evenly over a `tip_ratio` share, so no setting rides on another."""
    modes = plan_modes(samples, tir_ratio)
    seen: dict[Mode, int] = {}
    prompts = []
    for m in modes:
        prompts.append(seen.get(m, 0) % max(1, n_prompts))
        seen[m] = seen.get(m, 0) + 1
    tips = [False] * samples
    for key in set(zip(modes, prompts, strict=True)):
        members = [i for i in range(samples) if (modes[i], prompts[i]) == key]
        for i, on in zip(members, _spread(len(members), tip_ratio), strict=True):
            tips[i] = on
    return [SamplePlan(m, p, t) for m, p, t in zip(modes, prompts, tips, strict=True)]


def sample_rollout(config: SolveConfig, plan: SamplePlan) -> RolloutConfig:
    """The rollout settings of one planned sample."""
    variant = config.prompts[plan.prompt] if config.prompts else None
    return replace(config.rollout, tip=config.tip if plan.tip else None, prompt=variant)


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
    policy = policy or make_policy(config.policy)
    weight = weight or make_weight(config.weight)
    plans = plan_samples(config.samples, config.tir_ratio, len(config.prompts),
                         config.tip_ratio if config.tip else 0.0)
    groups = [(p.mode, p.prompt) for p in plans]  # samples sharing a prompt share its prefix cache
    if any(p.mode == "tir" for p in plans) and pool is None:
        raise ValueError("TIR samples need a kernel pool (set tir_ratio=0 for CoT only)")
    start = time.monotonic()
    budget = config.time_budget
    deadline = Deadline(start + budget) if budget else None
    done: list[Trace] = sorted(skip, key=lambda t: t.index)
    have = {t.index for t in done}
    todo = [i for i in range(config.samples) if i not in have]
    cancel = asyncio.Event()
    limit = asyncio.Semaphore(config.concurrency or max(1, len(todo)))

    leaders = _leaders(todo, groups) if config.warm_prefix else {}
    warm = {g: asyncio.Event() for g in set(groups)}
    for g, ev in warm.items():
        if g not in leaders:
            ev.set()

    async def run_one(i: int) -> Trace | None:
        group = groups[i]
        if i not in leaders.values():
            await _wait_any(warm[group], cancel)
        async with limit:
            if cancel.is_set():
                return None
            seed = sample_seed(config.seed, problem.id, i)
            handler = _first_text_sets(warm[group], on_event) if leaders.get(group) == i else on_event
            try:
                t = await rollout(problem, backend, pool, plans[i].mode, sample_rollout(config, plans[i]), i, seed,
                                  handler, deadline, cancel)
            finally:
                warm[group].set()
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


def _leaders(todo: Sequence[int], groups: Sequence[Any]) -> dict[Any, int]:
    """The first sample to run in each group (only when others of that group follow it)."""
    out: dict[Any, int] = {}
    for m in set(groups):
        mine = [i for i in todo if groups[i] == m]
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
