"""Batch runs that never lose a sample: evaluation and Kaggle-style runs over a problem set.

`run_problems` keeps a bounded number of problems in flight on each backend (all samples of a
problem share one backend), hands every finished sample to the run store at once (through
solve's `on_trace`), writes a problem record when a problem is done, and on a rerun passes the
stored samples of an unfinished problem as `skip`, so nothing is lost or run twice. Seeds come
from `agent.solve.sample_seed(seed, problem id, index)`, so a resumed run draws the same samples.

Scaling out: give several servers (wrapped in one `agent.backends.failover.FailoverBackend`,
which spreads requests by load and survives a server's death) or several backends; problems go
to whichever has a free slot (`concurrency` per server):

    tirmath eval --dataset aime2025 --out runs/a25 --server http://127.0.0.1:8000 \\
        --server http://127.0.0.1:8001 --samples 16 --concurrency 2

runs up to 2 problems per server at once (4 in all), 16 samples each.

Kaggle mode serves problems one at a time in a seeded random order, never returns to one, and
asks `agent.budget.TimeScheduler` how much of the global time budget each problem may use; a
problem reached after the budget is spent is recorded unanswered ("no_time").
Not covered: loading problems (datasets.py), metrics (metrics.py), opening backends (cli.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from agent.backends.base import Backend
from agent.rollout import RolloutConfig
from agent.solve import ReviseFn, SolveConfig, solve
from agent.types import Problem, Result, Trace, Vote
from evals.progress import Progress
from evals.shards import Shard
from evals.store import RunData, RunStore, problem_record, sample_record

KAGGLE_SECONDS_PER_PROBLEM = 5 * 3600 / 50  # AIMO: 50 problems in 5 hours
SolveFn = Callable[..., Awaitable[Result]]


@dataclass(frozen=True)
class RunConfig:
    """A run's settings. All fields but the last block are its identity (checked on resume)."""

    samples: int = 4  # samples per problem
    tir_ratio: float = 0.5
    max_tokens: int = 8192
    max_tool_calls: int = 8
    cell_timeout: float = 10.0
    temperature: float = 0.6
    top_p: float = 0.95
    seed: int = 0
    policy: str = "fixed"
    weight: str = "uniform"
    kaggle: bool = False
    time_budget: float | None = None  # Kaggle: seconds for the whole run (None: 6 min a problem)
    scheduler: str = "bank"  # Kaggle: agent.budget.make_scheduler spec
    prompt_family: str = "auto"
    record_tokens: bool = False
    model: str = ""
    # not identity: how the work is spread
    concurrency: int = 4  # problems in flight per backend (Kaggle: 1)
    sample_concurrency: int | None = None  # samples in flight per problem (None: all)

    def identity(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("concurrency", "sample_concurrency"):
            d.pop(k)
        return d

    def solve_config(self, time_budget: float | None = None) -> SolveConfig:
        return SolveConfig(
            samples=self.samples, tir_ratio=self.tir_ratio, seed=self.seed, time_budget=time_budget,
            rollout=RolloutConfig(max_tokens=self.max_tokens, max_tool_calls=self.max_tool_calls,
                                  cell_timeout=self.cell_timeout, temperature=self.temperature,
                                  top_p=self.top_p, record_tokens=self.record_tokens,
                                  prompt_family=self.prompt_family),
            policy=self.policy, weight=self.weight, concurrency=self.sample_concurrency,
        )

    def total_budget(self, n_problems: int) -> float:
        return self.time_budget if self.time_budget is not None else KAGGLE_SECONDS_PER_PROBLEM * n_problems


def problem_set_digest(problems: Sequence[Problem]) -> str:
    blob = json.dumps([p.to_dict() for p in problems], sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def kaggle_order(problems: Sequence[Problem], seed: int) -> list[Problem]:
    order = list(problems)
    random.Random(f"kaggle:{seed}").shuffle(order)
    return order


def open_store(run_dir: str, problems: Sequence[Problem], config: RunConfig, dataset: str,
               extra_meta: dict[str, Any] | None = None, shard: Shard | None = None) -> RunStore:
    """Create or resume the run store (UserError when RUN_DIR holds another config).

    With `shard`, `problems` is still the whole run's list: the identity is the whole run's plus
    the shard, and the store lists only the shard's problems (see evals.shards).
    """
    from agent import __version__

    identity: dict[str, Any] = {**config.identity(), "dataset": dataset, "problems": len(problems),
                                "problem_set": problem_set_digest(problems)}
    mine = list(problems) if shard is None else shard.select(problems)
    meta = {"tirmath_version": __version__, "problems": [p.id for p in mine],
            "problem_set": [p.to_dict() for p in mine], **(extra_meta or {})}
    if shard is not None:
        identity["shard"] = str(shard)
        meta["all_problems"] = [p.id for p in problems]
    return RunStore(run_dir, identity, meta)


class _Recorder:
    """The on_trace callback of one problem: grade, store, count."""

    def __init__(self, problem: Problem, store: RunStore, progress: Progress | None):
        self.problem, self.store, self.progress = problem, store, progress

    def __call__(self, trace: Trace) -> None:
        rec = sample_record(self.problem, trace)
        if self.store.add_sample(rec) and self.progress is not None:
            self.progress.sample_done(rec.correct)


def _finish(store: RunStore, progress: Progress | None, problem: Problem, result: Result,
            planned: int, budget: float | None) -> None:
    stored = len(store.data.samples.get(problem.id, {}))
    store.add_problem(problem_record(result, stored, len(store.data.problems), budget))
    if progress is not None:
        progress.problem_done(result.correct, max(0, planned - stored))


async def _solve_one(problem: Problem, backend: Backend, pool: Any, config: RunConfig, store: RunStore,
                     progress: Progress | None, solve_fn: SolveFn, budget: float | None = None,
                     revise: ReviseFn | None = None) -> Result:
    skip = store.data.traces(problem.id)
    result = await solve_fn(problem, backend, pool, config.solve_config(budget),
                            on_trace=_Recorder(problem, store, progress), skip=skip, revise=revise)
    _finish(store, progress, problem, result, config.samples, budget)
    return result


def _start_progress(progress: Progress | None, data: RunData) -> None:
    if progress is None:
        return
    recs = data.all_samples()
    progress.resumed(len(recs), sum(r.correct for r in recs), len(data.problems),
                     sum(bool(p.correct) for p in data.problems.values()))


async def run_problems(problems: Sequence[Problem], backends: Sequence[Backend], pool: Any, config: RunConfig,
                       store: RunStore, progress: Progress | None = None, solve_fn: SolveFn = solve) -> RunData:
    """Run every problem not yet finished in the store; returns the store's data."""
    if not backends:
        raise ValueError("at least one backend is needed")
    if config.kaggle:
        return await _run_kaggle(problems, backends[0], pool, config, store, progress, solve_fn)
    _start_progress(progress, store.data)
    slots = _slots(backends, config.concurrency)

    async def one(problem: Problem) -> None:
        backend = await slots.get()
        try:
            await _solve_one(problem, backend, pool, config, store, progress, solve_fn, config.time_budget)
        finally:
            slots.put_nowait(backend)

    todo = [p for p in problems if p.id not in store.data.problems]
    tasks = [asyncio.create_task(one(p)) for p in todo]
    try:
        await asyncio.gather(*tasks)
    finally:  # on a RunStopped (engine dead, servers down, disk full) what finished is stored
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if progress is not None:
            progress.close()
    return store.data


def _slots(backends: Sequence[Backend], concurrency: int) -> asyncio.Queue[Backend]:
    """`concurrency` problem slots per server: a failover pool over N servers counts N times."""
    slots: asyncio.Queue[Backend] = asyncio.Queue()
    for _ in range(max(1, concurrency)):
        for b in backends:
            for _ in range(int(getattr(b, "width", 1))):
                slots.put_nowait(b)
    return slots


def _make_scheduler(spec: str, total: float, n_problems: int) -> Any:
    from agent.budget import make_scheduler

    return make_scheduler(spec, total, n_problems)


async def _run_kaggle(problems: Sequence[Problem], backend: Backend, pool: Any, config: RunConfig,
                      store: RunStore, progress: Progress | None, solve_fn: SolveFn) -> RunData:
    order = kaggle_order(problems, config.seed)
    total = config.total_budget(len(order))
    scheduler = _make_scheduler(config.scheduler, total, len(order))
    _start_progress(progress, store.data)
    used = 0.0
    for rec in sorted(store.data.problems.values(), key=lambda r: r.position):
        used += rec.seconds
        scheduler.record(rec.seconds)
    t0 = time.monotonic()
    for i, problem in enumerate(order):
        if problem.id in store.data.problems:
            continue
        time_left = total - used - (time.monotonic() - t0)
        if time_left <= 0:
            no_time = Result(problem=problem, vote=Vote(answer=None), traces=(), stop_reason="no_time",
                             seconds=0.0, correct=False if problem.answer is not None else None)
            _finish(store, progress, problem, no_time, config.samples, 0.0)
            continue
        budget = min(time_left, float(scheduler.budget_for(i, len(order) - i, time_left)))
        # the scheduler may stretch a hard-looking problem's budget while it runs (banking)
        result = await _solve_one(problem, backend, pool, config, store, progress, solve_fn, budget,
                                  revise=scheduler.revise)
        scheduler.record(result.seconds)
    if progress is not None:
        progress.close()
    return store.data
