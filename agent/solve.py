"""`solve(problem, backend, pool, config) -> Result`: the one composed entry point.

Starts the problem's samples concurrently (a fixed, seeded mix of CoT and TIR, spread over the
prompt variants of `--prompts`, with the thought-switching penalty on a `tip_ratio` share of
each group when `--tip` is set: see `plan_samples`), never in lock-step rounds: while one sample waits for its kernel the others keep the engine busy.
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
from dataclasses import dataclass, replace
from typing import Any

from agent.answers import is_correct
from agent.backends.base import Backend
from agent.config import SolveConfig
from agent.errors import UserError
from agent.events import Event, EventHandler, emit
from agent.policy import StopPolicy, make_policy
from agent.prompt_variants import PromptVariant, parse_prompts
from agent.prompts import prompt_ids
from agent.rollout import Deadline, rollout
from agent.tip import parse_tip
from agent.types import Answer, Mode, Problem, Result, Trace, Vote
from agent.vote import ENTROPY_TOP_K, WeightFn, make_weight, needs_entropy, vote, voters
from sandbox.protocols import KernelPoolLike

# revise(budget, finished, total, elapsed) -> new budget (agent.budget.TimeScheduler.revise)
ReviseFn = Callable[[float, Sequence[Trace], int, float], float]


def sample_seed(base_seed: int, problem_id: str, index: int) -> int:
    """An explicit, derived seed for one sample, so any sample can be replayed alone."""
    digest = hashlib.blake2b(f"{base_seed}:{problem_id}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % (2**31 - 1)


def plan_modes(samples: int, tir_ratio: float) -> list[Mode]:
    """Spread TIR samples evenly among CoT ones: index i is TIR when floor((i+1)r) > floor(ir)."""
    return ["tir" if int((i + 1) * tir_ratio + 1e-9) > int(i * tir_ratio + 1e-9) else "cot" for i in range(samples)]


@dataclass(frozen=True)
class SamplePlan:
    """What one sample runs: its mode, its prompt variant (index into the variants), TIP on/off."""

    mode: Mode
    prompt: int = 0
    tip: bool = False


def _spread(n: int, ratio: float) -> list[bool]:
    return [int((i + 1) * ratio + 1e-9) > int(i * ratio + 1e-9) for i in range(n)]


def plan_samples(samples: int, tir_ratio: float, n_prompts: int = 1, tip_ratio: float = 0.0) -> list[SamplePlan]:
    """Modes as `plan_modes`; within each mode, the prompt variants in turn; within each (mode,
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


def config_plans(config: SolveConfig) -> tuple[list[SamplePlan], tuple[PromptVariant, ...]]:
    """The problem's sample plans and prompt variants from its config."""
    variants = parse_prompts(config.prompts)
    tip_ratio = config.tip_ratio if parse_tip(config.tip, config.tip_words) else 0.0
    return plan_samples(config.samples, config.tir_ratio, len(variants), tip_ratio), variants


def check_context(problem: Problem, backend: Backend, config: SolveConfig) -> None:
    """The longest first prompt + --max-tokens must fit the model's context: else one UserError."""
    ctx = backend.max_model_len
    if not ctx:
        return
    plans, variants = config_plans(config)
    groups = sorted({(p.mode, p.prompt) for p in plans})
    family = config.rollout.prompt_family
    prompt = max(len(prompt_ids(backend.tokenizer, problem, m, family, config.rollout.reasoning_effort,
                                variants[k] if variants else None))
                 for m, k in groups)
    need = prompt + config.rollout.max_tokens
    if prompt >= ctx:
        raise UserError(f"problem {problem.id}: the prompt alone is {prompt} tokens and the model's context is "
                        f"{ctx} (--max-model-len); shorten the problem or raise --max-model-len")
    if need > ctx:
        raise UserError(f"problem {problem.id}: prompt ({prompt} tokens) + --max-tokens {config.rollout.max_tokens} "
                        f"= {need} exceeds the model's context of {ctx} tokens; lower --max-tokens to "
                        f"{ctx - prompt} or raise --max-model-len")


async def solve(
    problem: Problem,
    backend: Backend,
    pool: KernelPoolLike | None,
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
    A `BackendError` from any sample cancels the others and propagates (finished samples have
    already gone to `on_trace`).
    """
    if needs_entropy(config.weight) and not config.rollout.logprobs:  # the entropy weight reads logprobs
        config = replace(config, rollout=replace(config.rollout, logprobs=ENTROPY_TOP_K))
    check_context(problem, backend, config)
    run = ProblemRun(problem, backend, pool, config, policy or make_policy(config.policy),
                     weight or make_weight(config.weight), on_event, on_trace, skip, revise)
    return await run.run()


class ProblemRun:
    """One problem's samples in flight, its vote and its (extendable) deadline."""

    def __init__(self, problem: Problem, backend: Backend, pool: KernelPoolLike | None, config: SolveConfig,
                 policy: StopPolicy, weight: WeightFn, on_event: EventHandler | None,
                 on_trace: Callable[[Trace], None] | None, skip: Sequence[Trace], revise: ReviseFn | None) -> None:
        self.problem, self.backend, self.pool, self.config = problem, backend, pool, config
        self.policy, self.weight, self.on_event, self.on_trace, self.revise = policy, weight, on_event, on_trace, revise
        self.plans, self.variants = config_plans(config)
        self.tip = parse_tip(config.tip, config.tip_words)
        self.modes = [p.mode for p in self.plans]
        groups = [(p.mode, p.prompt) for p in self.plans]  # samples sharing a prompt share its prefix cache
        if "tir" in self.modes and pool is None:
            raise ValueError("TIR samples need a kernel pool (set tir_ratio=0 for CoT only)")
        self.start = time.monotonic()
        self.budget = config.time_budget
        self.deadline = Deadline(self.start + self.budget) if self.budget else None
        self.done: list[Trace] = list(skip)  # in completion order (the run store keeps it): part of the tie-break
        have = {t.index for t in self.done}
        self.todo = [i for i in range(config.samples) if i not in have]
        self.cancel = asyncio.Event()
        self.limit = asyncio.Semaphore(config.concurrency or max(1, len(self.todo)))
        self.groups = groups
        self.leaders = _leaders(self.todo, groups) if config.warm_prefix else {}
        self.warm = {g: asyncio.Event() for g in set(groups)}
        for m, ev in self.warm.items():
            if m not in self.leaders:
                ev.set()
        self.stop_reason = "all_done"

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    async def run(self) -> Result:
        reason = self.policy.decide(voters(self.done), self.config.samples, 0.0, self.budget) if self.done else None
        if reason:
            self.cancel.set()
            self.stop_reason = reason
        tasks = [asyncio.create_task(self.sample(i)) for i in self.todo]
        watch = asyncio.create_task(_watchdog(self.deadline, self.extend, self.start)) \
            if self.deadline and self.revise else None
        current = vote(voters(self.done), self.weight)
        try:
            for fut in asyncio.as_completed(tasks):
                t = await fut
                if t is not None:
                    current = self.record(t)
        finally:
            for task in tasks:
                task.cancel()
            if watch is not None:
                watch.cancel()
            # let the cancelled samples close their streams and abort their engine requests now,
            # not when a stopped loop garbage-collects them
            await asyncio.gather(*tasks, *([watch] if watch else []), return_exceptions=True)
        if self.stop_reason == "all_done" and any(t.finish == "time" for t in self.done):
            self.stop_reason = "time"
        return _result(self.problem, current, self.done, self.stop_reason, self.elapsed(), self.policy)

    async def sample(self, i: int) -> Trace | None:
        group, plan = self.groups[i], self.plans[i]
        if i not in self.leaders.values():
            await _wait_any(self.warm[group], self.cancel)
        async with self.limit:
            if self.cancel.is_set():
                return None
            seed = sample_seed(self.config.seed, self.problem.id, i)
            lead = self.leaders.get(group) == i
            handler = _first_text_sets(self.warm[group], self.on_event) if lead else self.on_event
            variant = self.variants[plan.prompt] if self.variants else None
            try:
                t = await rollout(self.problem, self.backend, self.pool, plan.mode, self.config.rollout, i, seed,
                                  handler, self.deadline, self.cancel, tip=self.tip if plan.tip else None,
                                  variant=variant)
            finally:
                self.warm[group].set()
            return replace(t, started=round(self.elapsed() - t.seconds, 3))

    def record(self, t: Trace) -> Vote:
        """A finished sample: store it, re-vote, and ask the policy whether the problem is settled."""
        self.done.append(t)
        if self.on_trace is not None:
            self.on_trace(t)
        counted = voters(self.done)
        current = vote(counted, self.weight)
        emit(self.on_event, Event("vote", t.index, vote=current))
        if not self.cancel.is_set():
            self.extend(self.elapsed())
            reason = self.policy.decide(counted, self.config.samples, self.elapsed(), self.budget)
            if reason:
                self.stop_reason = reason
                self.cancel.set()
                emit(self.on_event, Event("stop", text=reason))
        return current

    def extend(self, elapsed: float) -> bool:
        """Ask the time scheduler for more time; True when the deadline moved."""
        if self.revise is None or self.deadline is None or self.budget is None:
            return False
        new = self.revise(self.budget, voters(self.done), self.config.samples, elapsed)
        if new > self.budget:
            self.budget, self.deadline.at = new, self.start + new
            return True
        return False


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
