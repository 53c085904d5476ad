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

from agent.answers import is_correct
from agent.backends.base import Backend
from agent.config import SolveConfig
from agent.errors import UserError
from agent.events import Event, EventHandler, emit
from agent.policy import StopPolicy, make_policy
from agent.prompts import prompt_ids
from agent.rollout import Deadline, rollout
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


def check_context(problem: Problem, backend: Backend, config: SolveConfig) -> None:
    """The longest first prompt + --max-tokens must fit the model's context: else one UserError."""
    ctx = backend.max_model_len
    if not ctx:
        return
    modes = sorted(set(plan_modes(config.samples, config.tir_ratio)))
    prompt = max(len(prompt_ids(backend.tokenizer, problem, m, config.rollout.prompt_family)) for m in modes)
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
        self.modes = plan_modes(config.samples, config.tir_ratio)
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
        self.leaders = _leaders(self.todo, self.modes) if config.warm_prefix else {}
        self.warm = {m: asyncio.Event() for m in set(self.modes)}
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
        if self.stop_reason == "all_done" and any(t.finish == "time" for t in self.done):
            self.stop_reason = "time"
        return _result(self.problem, current, self.done, self.stop_reason, self.elapsed(), self.policy)

    async def sample(self, i: int) -> Trace | None:
        mode = self.modes[i]
        if i not in self.leaders.values():
            await _wait_any(self.warm[mode], self.cancel)
        async with self.limit:
            if self.cancel.is_set():
                return None
            seed = sample_seed(self.config.seed, self.problem.id, i)
            lead = self.leaders.get(mode) == i
            handler = _first_text_sets(self.warm[mode], self.on_event) if lead else self.on_event
            try:
                t = await rollout(self.problem, self.backend, self.pool, mode, self.config.rollout, i, seed,
                                  handler, self.deadline, self.cancel)
            finally:
                self.warm[mode].set()
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
