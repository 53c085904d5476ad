"""Batch runs that never lose a sample: evaluation and Kaggle-style runs over a problem set.

`run_problems` keeps a bounded number of problems in flight on each backend (all samples of a
problem share one backend), hands every finished sample to the run store at once (through
solve's `on_trace`), writes a problem record when a problem is done, and on a rerun passes the
stored samples of an unfinished problem as `skip`, so nothing is lost or run twice. Seeds come
from `agent.solve.sample_seed(seed, problem id, index)`, so a resumed run draws the same samples.

Scaling out: give several backends (e.g. one per vLLM server started with data parallelism) and
problems go to whichever backend has a free slot:

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
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from agent.backends.base import Backend
from agent.config import RolloutConfig, SolveConfig
from agent.solve import ReviseFn, solve
from agent.types import Problem, Result, Trace, Vote
from evals.progress import Progress
from evals.store import RunData, RunStore, problem_record, sample_record

log = logging.getLogger("tirmath")
KAGGLE_SECONDS_PER_PROBLEM = 5 * 3600 / 50  # AIMO: 50 problems in 5 hours
SolveFn = Callable[..., Awaitable[Result]]


# The run identity's keys before the config tree (kept flat so older run stores still resume).
_LEGACY_SOLVE_KEYS = ("samples", "tir_ratio", "seed", "policy", "weight")
_LEGACY_ROLLOUT_KEYS = ("max_tokens", "max_tool_calls", "cell_timeout", "temperature", "top_p",
                        "prompt_family", "record_tokens")
_NOT_IDENTITY = ("concurrency", "warm_prefix", "time_budget", "rollout")  # of SolveConfig


@dataclass(frozen=True)
class RunConfig:
    """A run's settings: the embedded SolveConfig (one problem's samples, limits and vote) plus how
    the run goes over its problems. All but `concurrency` and the solve's own concurrency and
    prefix warming are its identity (checked on resume)."""

    solve: SolveConfig = field(default_factory=SolveConfig)
    kaggle: bool = False
    time_budget: float | None = None  # per problem; Kaggle: seconds for the whole run (None: 6 min a problem)
    scheduler: str = "bank"  # Kaggle: agent.budget.make_scheduler spec
    model: str = ""
    concurrency: int = 4  # problems in flight per backend (Kaggle: 1); not identity
    retry_errors: bool = True  # a resumed run runs samples that ended in "error" again; not identity

    @property
    def samples(self) -> int:
        return self.solve.samples

    @property
    def tir_ratio(self) -> float:
        return self.solve.tir_ratio

    @property
    def seed(self) -> int:
        return self.solve.seed

    def identity(self) -> dict[str, Any]:
        """Flat, as older stores wrote it; a setting added later joins only when not at its default."""
        solve, roll = asdict(self.solve), asdict(self.solve.rollout)
        d: dict[str, Any] = {k: solve[k] for k in _LEGACY_SOLVE_KEYS}
        d.update({k: roll[k] for k in _LEGACY_ROLLOUT_KEYS})
        d.update(kaggle=self.kaggle, time_budget=self.time_budget, scheduler=self.scheduler, model=self.model)
        for group, default, skip in ((solve, asdict(SolveConfig()), _NOT_IDENTITY),
                                     (roll, asdict(RolloutConfig()), ())):
            for k, v in group.items():
                if k not in d and k not in skip and v != default[k]:
                    d[k] = v
        return d

    def solve_config(self, time_budget: float | None = None) -> SolveConfig:
        return replace(self.solve, time_budget=time_budget)

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
               extra_meta: dict[str, Any] | None = None) -> RunStore:
    """Create or resume the run store (UserError when RUN_DIR holds another config)."""
    from agent import __version__

    identity = {**config.identity(), "dataset": dataset, "problems": len(problems),
                "problem_set": problem_set_digest(problems)}
    from agent.config import to_dict

    meta = {"tirmath_version": __version__, "settings": to_dict(config), "problems": [p.id for p in problems],
            "problem_set": [p.to_dict() for p in problems], **(extra_meta or {})}
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
    position = store.data.problems[problem.id].position if problem.id in store.data.problems else len(store.data.problems)
    store.add_problem(problem_record(result, stored, position, budget), replace=True)
    if progress is not None:
        progress.problem_done(result.correct, max(0, planned - stored))


async def _solve_one(problem: Problem, backend: Backend, pool: Any, config: RunConfig, store: RunStore,
                     progress: Progress | None, solve_fn: SolveFn, budget: float | None = None,
                     revise: ReviseFn | None = None) -> Result:
    # completion order (the store's), as the agent voted; failed samples are retried unless told not to
    skip = [r.trace for r in store.data.samples.get(problem.id, {}).values()
            if r.trace.finish != "error" or not config.retry_errors]
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


def pending(problems: Sequence[Problem], data: RunData, retry_errors: bool, say: bool = True) -> list[Problem]:
    """Problems still to run: not finished, or (retrying) holding samples that ended in "error"."""
    retry = [p for p in problems if p.id in data.problems and retry_errors and data.errored(p.id)]
    if retry and say:
        n = sum(len(data.errored(p.id)) for p in retry)
        log.warning("retrying %d samples that ended in error, in %d problems (--no-retry-errors keeps them)",
                    n, len(retry))
    return [p for p in problems if p.id not in data.problems or p in retry]


async def run_problems(problems: Sequence[Problem], backends: Sequence[Backend], pool: Any, config: RunConfig,
                       store: RunStore, progress: Progress | None = None, solve_fn: SolveFn = solve) -> RunData:
    """Run every problem not yet finished in the store; returns the store's data."""
    if not backends:
        raise ValueError("at least one backend is needed")
    if config.kaggle:
        return await _run_kaggle(problems, backends[0], pool, config, store, progress, solve_fn)
    _start_progress(progress, store.data)
    slots: asyncio.Queue[Backend] = asyncio.Queue()
    for _ in range(max(1, config.concurrency)):
        for b in backends:
            slots.put_nowait(b)

    async def one(problem: Problem) -> None:
        backend = await slots.get()
        try:
            await _solve_one(problem, backend, pool, config, store, progress, solve_fn, config.time_budget)
        finally:
            slots.put_nowait(backend)

    todo = pending(problems, store.data, config.retry_errors)
    tasks = [asyncio.create_task(one(p)) for p in todo]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if progress is not None:
        progress.close()
    return store.data


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
        if problem.id in store.data.problems and not (config.retry_errors and store.data.errored(problem.id)):
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
