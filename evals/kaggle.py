"""A Kaggle `predict` that never fails: `make_predict(...)` for the AIMO inference servers.

    from evals.kaggle import KaggleConfig, make_predict
    predict = make_predict(KaggleConfig(competition="aimo3"), config=SolveConfig(samples=8), model=MODEL)
    server = kaggle_evaluation.aimo_3_inference_server.AIMO3InferenceServer(predict)

The competition's gateway calls `predict(*row)` once per problem, one row at a time in a
shuffled order, with polars Series (`id`, `problem`, and `answer` in the reference set), and
takes a one-row DataFrame with the `id` and an integer `answer`. This predict:

- starts the engine in the background when made (a `Solver`), so the first call comes at once;
- gives each problem a share of the whole run's clock (counted from `make_predict`) with a time
  scheduler from `agent.budget` (problems seen, problems left, time left), and cuts a problem
  short when its deadline passes (`grace` seconds later it is cancelled outright);
- reduces answers to the competition's range (AIMO2: mod 1000, AIMO3: mod 100000);
- stores every sample and problem in a run store (`tirmath report RUN_DIR` works on it); a
  problem already stored (a restarted run) is answered from the store without solving again;
- never raises: a bad row, an engine that failed to load, a crash or no time left give a logged
  fallback answer (the leading vote among the problem's finished samples, else `fallback`).
  Each is logged to the `tirmath.kaggle` logger and RUN_DIR/predict.log, and stored.

It returns a polars DataFrame when polars is importable, else pandas. Not covered: serving
(kaggle_evaluation, or evals.kaggle_local for rehearsal) and installing (evals.bundle).
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from agent.api import Solver
from agent.budget import make_scheduler
from agent.errors import UserError
from agent.solve import SolveConfig, voters
from agent.types import Answer, Problem, Result, Trace, Vote
from agent.vote import make_weight, vote
from evals.store import RunStore, problem_record, sample_record

log = logging.getLogger("tirmath.kaggle")


@dataclass(frozen=True)
class Competition:
    name: str
    modulus: int  # answers are 0 .. modulus-1
    problems: int  # problems in a run
    seconds: float  # the notebook's run time


COMPETITIONS = {
    "aimo2": Competition("aimo2", 1000, 50, 5 * 3600.0),
    "aimo3": Competition("aimo3", 100000, 50, 9 * 3600.0),
}


@dataclass(frozen=True)
class KaggleConfig:
    """How a Kaggle run spends its clock and where it keeps its records."""

    competition: str = "aimo3"  # aimo2 | aimo3 (answer range, problem count, run time)
    time_budget: float | None = None  # seconds for the whole run from make_predict (None: the competition's)
    problems: int | None = None  # problems expected (None: the competition's)
    scheduler: str = "bank"  # agent.budget.make_scheduler spec
    reserve: float | None = None  # seconds kept back at the end (None: 2% of the run, at most 60)
    grace: float = 5.0  # seconds past a problem's deadline before it is cancelled outright
    min_budget: float = 1.0  # below this many seconds a problem is not started (fallback answer)
    fallback: int = 0  # the fixed guess when no sample gave an answer
    run_dir: str = "tirmath_run"  # the run store

    def __post_init__(self) -> None:
        if self.competition not in COMPETITIONS:
            raise UserError(f"unknown competition {self.competition!r}; choose from {', '.join(COMPETITIONS)}")
        if self.time_budget is not None and self.time_budget <= 0:
            raise UserError("the time budget must be positive")
        if self.problems is not None and self.problems < 1:
            raise UserError("problems must be at least 1")

    @property
    def spec(self) -> Competition:
        return COMPETITIONS[self.competition]

    def total(self) -> float:
        """Seconds for the whole run."""
        return self.time_budget or self.spec.seconds

    def reserve_seconds(self) -> float:
        return self.reserve if self.reserve is not None else min(60.0, 0.02 * self.total())

    def share(self) -> float:
        """An equal share of the run for each expected problem (what a first problem may get)."""
        return (self.total() - self.reserve_seconds()) / (self.problems or self.spec.problems)


@dataclass
class Outcome:
    """What predict answered for one row and why (also kept in `KagglePredictor.outcomes`)."""

    id: str
    answer: int
    how: str  # "solved", "stored", or "fallback:<why>"
    seconds: float
    budget: float | None = None
    traces: list[Trace] = field(default_factory=list)


class KagglePredictor:
    """The callable `make_predict` returns: `predict(id_, problem, answer=None)` -> DataFrame."""

    def __init__(self, solver: Solver, config: KaggleConfig, clock: Any = time.monotonic) -> None:
        self.solver, self.config, self.clock = solver, config, clock
        self.created = clock()
        comp = config.spec
        self.total = config.total()
        self.expected = config.problems or comp.problems
        self.scheduler = make_scheduler(config.scheduler, self.total, self.expected)
        self.store = RunStore(config.run_dir, _identity(solver, config, self.total), _meta(solver))
        self._file_log = _attach_file_log(config.run_dir)
        self.used_before = 0.0
        for rec in sorted(self.store.data.problems.values(), key=lambda r: r.position):
            self.used_before += rec.seconds
            self.scheduler.record(rec.seconds)
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()

    def time_left(self) -> float:
        """Seconds the run may still spend on problems (the reserve excluded)."""
        return self.total - self.used_before - (self.clock() - self.created) - self.config.reserve_seconds()

    def __call__(self, id_: Any, problem: Any = None, answer: Any = None, *_: Any) -> Any:
        t0 = self.clock()
        raw_id: Any = best_id(id_)
        try:
            raw_id, text, ref = read_row(id_, problem, answer)
            out = self._answer(str(raw_id), text, ref, t0)
        except Exception as e:  # never raise into the gateway: log, answer, go on
            log.exception("predict %s: %s: %s; answering the fallback", raw_id, type(e).__name__, e)
            out = self._record_fallback(str(raw_id), None, [], f"error: {type(e).__name__}: {e}", t0, None)
        self.outcomes.append(out)
        return to_frame(raw_id, out.answer)

    def _answer(self, pid: str, text: str, ref: str | None, t0: float) -> Outcome:
        stored = self.store.data.problems.get(pid)
        if stored is not None:
            value = stored.answer if stored.answer is not None else self.config.fallback
            return Outcome(pid, value % self.config.spec.modulus, "stored", 0.0, stored.time_budget)
        prob = Problem(id=pid, text=text, answer=ref, source=self.config.competition,
                       modulus=self.config.spec.modulus)
        why = self._wait_engine()
        if why:
            return self._record_fallback(pid, prob, [], why, t0, None)
        left = self.time_left()
        index = len(self.store.data.problems)
        budget = min(left, float(self.scheduler.budget_for(index, max(1, self.expected - index), left)))
        if budget < self.config.min_budget:
            return self._record_fallback(pid, prob, [], "no_time", t0, max(budget, 0.0))
        return self._solve(prob, budget, t0)

    def _wait_engine(self) -> str | None:
        """None when the engine is up; else why not (logged)."""
        try:
            self.solver.wait_ready(timeout=max(0.0, self.time_left()))
            return None
        except TimeoutError:
            return "engine not ready before the time ran out"
        except Exception as e:
            return f"engine failed to start: {type(e).__name__}: {e}"

    def _solve(self, prob: Problem, budget: float, t0: float) -> Outcome:
        traces: list[Trace] = []
        granted = [budget]

        def on_trace(t: Trace) -> None:
            with self._lock:
                traces.append(t)
                self.store.add_sample(sample_record(prob, t))

        def revise(b: float, finished: Sequence[Trace], total: int, elapsed: float) -> float:
            new = min(self.scheduler.revise(b, finished, total, elapsed), max(b, self.time_left() + elapsed))
            granted[0] = max(granted[0], new)
            return new

        skip = self.store.data.traces(prob.id)
        fut = self.solver.submit(prob, time_budget=budget, on_trace=on_trace, skip=skip, revise=revise)
        start = self.clock()
        while True:
            wait = start + granted[0] + self.config.grace - self.clock()
            try:
                result = fut.result(timeout=max(0.0, wait))
                break
            except concurrent.futures.TimeoutError:
                if self.clock() < start + granted[0] + self.config.grace:
                    continue  # the scheduler extended the budget meanwhile
                fut.cancel()
                return self._record_fallback(prob.id, prob, traces, "cut off at the deadline", t0, granted[0])
            except Exception as e:
                log.exception("problem %s: solve failed (%s)", prob.id, e)
                return self._record_fallback(prob.id, prob, traces, f"error: {type(e).__name__}: {e}", t0, budget)
        return self._record_result(result, granted[0], t0, traces)

    def _record_result(self, result: Result, budget: float, t0: float, traces: list[Trace]) -> Outcome:
        if result.answer is None:
            return self._record_fallback(result.problem.id, result.problem, list(result.traces),
                                         f"no answer ({result.stop_reason})", t0, budget)
        seconds = self.clock() - t0
        with self._lock:
            self.store.add_problem(problem_record(replace(result, seconds=round(seconds, 3)), len(result.traces),
                                                  len(self.store.data.problems), budget))
        self.scheduler.record(seconds)
        return Outcome(result.problem.id, result.answer % self.config.spec.modulus, "solved", seconds, budget,
                       list(result.traces))

    def _record_fallback(self, pid: str, prob: Problem | None, traces: list[Trace], why: str, t0: float,
                         budget: float | None) -> Outcome:
        """The leading vote among finished samples, else the fixed guess; logged and stored."""
        v = vote(voters(traces), make_weight(self.solver.config.weight))
        value = (v.answer if v.answer is not None else self.config.fallback) % self.config.spec.modulus
        seconds = self.clock() - t0
        log.warning("problem %s: fallback answer %d (%s; %d samples finished)", pid, value, why, len(traces))
        if prob is not None:
            with self._lock:
                res = _fallback_result(prob, value, v, traces, why, seconds)
                self.store.add_problem(problem_record(res, len(traces), len(self.store.data.problems), budget))
            self.scheduler.record(seconds)
        return Outcome(pid, value, f"fallback:{why}", seconds, budget, traces)

    def close(self) -> None:
        """Close the solver (engine, kernels) and the run store."""
        try:
            self.solver.close()
        finally:
            self.store.close()
            if self._file_log is not None:
                log.removeHandler(self._file_log)
                self._file_log.close()


def make_predict(kaggle: KaggleConfig | None = None, *, solver: Solver | None = None,
                 config: SolveConfig | None = None, **solver_options: Any) -> KagglePredictor:
    """A never-failing `predict`; starts a Solver (engine in the background) unless given one.

    `config` and `solver_options` (model, server, engine, engine_options, sandbox, kernels, ...)
    go to `agent.api.Solver`. Bad settings raise UserError here, before anything starts."""
    kaggle = kaggle or KaggleConfig()
    if solver is None:
        solver = Solver(config, start=False, **solver_options)
    predictor = KagglePredictor(solver, kaggle)
    solver.start()
    return predictor


# -- rows in, frames out ----------------------------------------------------------------------


def scalar(value: Any) -> Any:
    """The single value of a one-row polars/pandas Series or DataFrame column, or the value itself."""
    if value is None or isinstance(value, (str, int, float)):
        return value
    if hasattr(value, "to_list"):  # polars Series
        items = value.to_list()
    elif hasattr(value, "tolist"):  # pandas Series, numpy
        items = value.tolist()
    else:
        return value
    if len(items) != 1:
        raise ValueError(f"expected one row, got {len(items)}")
    return items[0]


def best_id(id_: Any) -> Any:
    """The row's id as well as it can be read (for a fallback answer to a malformed row)."""
    try:
        if hasattr(id_, "columns"):
            id_ = id_["id"]
        if hasattr(id_, "to_list") or hasattr(id_, "tolist"):
            items = id_.to_list() if hasattr(id_, "to_list") else id_.tolist()
            return items[0] if items else "?"
        return "?" if id_ is None else id_
    except Exception:
        return "?"


def read_row(id_: Any, problem: Any = None, answer: Any = None) -> tuple[Any, str, str | None]:
    """(id, problem text, reference answer or None) from the gateway's arguments.

    Accepts the Series the gateway passes, plain values, or a one-row DataFrame as `id_`."""
    if hasattr(id_, "columns") and problem is None:  # a whole one-row DataFrame
        cols = list(id_.columns)
        if "id" not in cols or "problem" not in cols:
            raise ValueError(f"the row has no id/problem columns (columns: {cols})")
        id_, problem, answer = id_["id"], id_["problem"], (id_["answer"] if "answer" in cols else None)
    raw_id, text, ref = scalar(id_), scalar(problem), scalar(answer)
    if raw_id is None:
        raise ValueError("the row has no id")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("the row has no problem text")
    return raw_id, text, None if ref is None else str(ref)


def to_frame(id_value: Any, answer: int) -> Any:
    """A one-row DataFrame {id, answer}: polars when importable, else pandas."""
    try:
        import polars as pl

        return pl.DataFrame({"id": [id_value], "answer": [int(answer)]})
    except ImportError:
        import pandas as pd

        return pd.DataFrame({"id": [id_value], "answer": [int(answer)]})


# -- records ----------------------------------------------------------------------------------


def _fallback_result(prob: Problem, value: int, v: Vote, traces: list[Trace], why: str, seconds: float) -> Result:
    from agent.answers import is_correct

    correct = None
    if prob.answer is not None:
        correct = is_correct(Answer(raw=str(value), value=value, source="boxed"), prob.answer, prob.modulus)
    return Result(problem=prob, vote=Vote(answer=value, tally=v.tally, voters=v.voters),
                  traces=tuple(sorted(traces, key=lambda t: t.index)), stop_reason=f"fallback: {why}",
                  seconds=round(seconds, 3), correct=correct)


def _identity(solver: Solver, config: KaggleConfig, total: float) -> dict[str, Any]:
    c = solver.config
    roll = asdict(c.rollout)
    return {"kaggle": True, "dataset": f"kaggle:{config.competition}", "competition": config.competition,
            "model": solver.model or (solver.server or "default"), "samples": c.samples,
            "tir_ratio": c.tir_ratio, "seed": c.seed, "policy": c.policy, "weight": c.weight,
            "scheduler": config.scheduler, "time_budget": total, "reserve": config.reserve_seconds(),
            **{k: roll[k] for k in ("max_tokens", "max_tool_calls", "cell_timeout", "temperature", "top_p",
                                    "prompt_family")}}


def _meta(solver: Solver) -> dict[str, Any]:
    from agent import __version__

    return {"tirmath_version": __version__, "command": "kaggle predict", "servers": [solver.server] if solver.server else []}


def _attach_file_log(run_dir: str) -> logging.Handler | None:
    try:
        handler = logging.FileHandler(f"{run_dir}/predict.log", encoding="utf-8")
    except OSError:
        return None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)
    return handler
