"""`tirmath eval | report | compare | gen-tir`: thin command lines over the evals library.

Each `*_main(argv)` parses its flags, checks every input (dataset rows, options, an existing
run folder's config) before any model is loaded, then calls library code: `runner.run_problems`,
`report.write_report`, `compare.compare_runs`, `gentir.build_dataset`. User mistakes raise
`UserError` (one line, exit 2). Opening engines, servers and the kernel pool happens here.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from agent.cli_args import ConfigParser, with_builtin_defaults
from agent.config import EngineConfig, RolloutConfig, SandboxSettings, SolveConfig, setting
from agent.datasets import FieldMap, load_problems, parse_ids
from agent.types import Problem
from evals.runner import RunConfig


def _check_scheduler(spec: str) -> None:
    from agent.budget import make_scheduler

    make_scheduler(spec, 1.0, 1)


@dataclass(frozen=True)
class DataArgs:
    """Which problems a batch command runs."""

    dataset: str = setting(None, "short name (see `tirmath datasets`), a .jsonl/.csv/.parquet file, a "
                           "save_to_disk folder, or a Hugging Face hub id", required=True)
    split: str | None = setting(None, "split of a Hugging Face dataset (default: test, else the first)")
    problem_field: str = setting("problem", "column holding the problem text")
    answer_field: str = setting("answer", "column holding the reference answer")
    id_field: str = setting("id", "column holding the problem id")
    integer_only: bool = setting(False, "keep only rows with integer answers")
    limit: int | None = setting(None, "first N problems (after filters)", lo=1)
    ids: str | None = setting(None, "comma-separated problem ids")
    modulus: int | None = setting(None, "reduce integer answers mod this (AIMO2: 1000)", lo=2)


@dataclass(frozen=True)
class RunArgs:
    """How a batch command goes over its problems, and where it writes."""

    out: str = setting(None, "run folder (created, or resumed when it holds this run)", path="dir",
                       required=True)
    kaggle: bool = setting(False, "one problem at a time, random order, global --time-budget")
    scheduler: str = setting("bank", "Kaggle time scheduler: flat | bank[:F[:X]] | aimo3[:B[:H]]", check=_check_scheduler)
    concurrency: int = setting(4, "problems in flight per backend", lo=1)
    retry_errors: bool = setting(True, "on resume, run samples that ended in error again (--no-retry-errors "
                                 "keeps them)")
    quiet: bool = setting(False, "no progress line")
    verbose: bool = setting(False, "show the engine's own log lines")


@dataclass(frozen=True)
class FilterArgs:
    """Which gen-tir traces are kept."""

    keep: int = setting(4, "at most K traces per problem, shortest first", lo=1)
    min_tokens: int = setting(0, "drop traces shorter than this", lo=0)
    max_keep_tokens: int | None = setting(None, "drop traces longer than this", lo=1)
    allow_cell_errors: bool = setting(False, "keep traces with Python errors in cells (recovered mistakes); "
                                      "crashes, timeouts and out-of-memory are always dropped")
    dedup: float = setting(0.8, "near-duplicate threshold (word 5-gram Jaccard)", lo=0, hi=1)
    keep_incorrect: bool = setting(False, "keep wrong answers too (data exploration)")


BATCH_GROUPS = (DataArgs, RunArgs, EngineConfig, RolloutConfig, SolveConfig, SandboxSettings)


@dataclass(frozen=True)
class Batch:
    """A parsed eval / gen-tir command line."""

    data: DataArgs
    run: RunArgs
    engine: EngineConfig
    sandbox: SandboxSettings
    config: RunConfig
    groups: dict[type, Any]


def _parse(prog: str, description: str, argv: list[str], extra: tuple[type, ...] = (), **defaults: Any) -> Batch:
    g = ConfigParser(prog, (*BATCH_GROUPS, *extra), description=description, samples=4, **defaults).parse(
        with_builtin_defaults(argv))
    run, engine, solve = g[RunArgs], g[EngineConfig], g[SolveConfig]
    if run.kaggle:
        run = replace(run, concurrency=1)
    model = engine.model or ("server" if engine.server else "default")
    config = RunConfig(solve=replace(solve, time_budget=None), kaggle=run.kaggle, time_budget=solve.time_budget,
                       scheduler=run.scheduler, model=model, concurrency=run.concurrency,
                       retry_errors=run.retry_errors)
    return Batch(g[DataArgs], run, engine, g[SandboxSettings], config, g)


def _problems(d: DataArgs) -> list[Problem]:
    return load_problems(d.dataset, fields=FieldMap(problem=d.problem_field, answer=d.answer_field, id=d.id_field),
                         split=d.split, integer_only=d.integer_only, limit=d.limit, ids=parse_ids(d.ids),
                         modulus=d.modulus)


async def _open_backends(engine: EngineConfig, family: str) -> list[Any]:
    from agent.backends import open_backend

    if engine.server:
        return [await open_backend(model=engine.model, server=url, engine=engine.engine, prompt_family=family)
                for url in engine.server]
    return [await open_backend(model=engine.model, engine=engine.engine, prompt_family=family,
                               **engine.engine_options())]


def _pool_size(b: Batch) -> int:
    from agent.solve import plan_modes

    solve = b.config.solve
    n_tir = plan_modes(solve.samples, solve.tir_ratio).count("tir")
    per_problem = min(n_tir, solve.concurrency or n_tir)
    in_flight = per_problem * b.config.concurrency * max(1, len(b.engine.server))
    return b.sandbox.kernels or max(1, min(16, in_flight))


async def _execute(b: Batch, problems: list[Problem], store: Any, label: str) -> Any:
    """Open backends and the kernel pool, run, close everything."""
    from evals.progress import Progress
    from evals.runner import run_problems

    pool = None
    backends: list[Any] = []
    try:
        if b.config.tir_ratio > 0:
            from sandbox.pool import KernelPool

            pool = KernelPool(_pool_size(b), b.sandbox.sandbox_config())
            await pool.start()
        backends = await _open_backends(b.engine, b.config.solve.rollout.prompt_family)
        progress = Progress(len(problems) * b.config.samples, len(problems), enabled=not b.run.quiet, label=label)
        return await run_problems(problems, backends, pool, b.config, store, progress)
    finally:
        for backend in backends:
            await backend.close()
        if pool is not None:
            await pool.close()


def _run_store(b: Batch, run_dir: str, problems: list[Problem], label: str) -> Any:
    from evals.runner import open_store

    meta = {"servers": list(b.engine.server), "command": label}
    store = open_store(run_dir, problems, b.config, b.data.dataset, meta)
    try:
        from evals.runner import pending

        if pending(problems, store.data, b.config.retry_errors, say=False):
            asyncio.run(_execute(b, problems, store, label))
        return store.data
    finally:
        store.close()


def eval_main(argv: list[str]) -> int:
    b = _parse("tirmath eval", "Evaluate the agent on a dataset into a resumable run store (kill it any time; "
               "rerun the same command to finish).", argv)
    problems = _problems(b.data)
    data = _run_store(b, b.run.out, problems, "eval")
    from evals.metrics import run_metrics
    from evals.report import format_summary

    print(format_summary(run_metrics(data), kaggle=b.config.kaggle, data=data))
    return 0


def gen_tir_main(argv: list[str]) -> int:
    from evals.gentir import FilterConfig, build_dataset

    b = _parse("tirmath gen-tir", "Generate a filtered TIR training dataset (Hugging Face save_to_disk folder; "
               "run store in OUT/run, dataset in OUT/dataset); resumable like eval.", argv, (FilterArgs,),
               tir_ratio=1.0)
    f = b.groups[FilterArgs]
    problems = _problems(b.data)
    out = Path(b.run.out)
    data = _run_store(b, str(out / "run"), problems, "gen-tir")
    filt = FilterConfig(keep=f.keep, min_tokens=f.min_tokens, max_tokens=f.max_keep_tokens,
                        allow_cell_errors=f.allow_cell_errors, dedup=f.dedup, keep_incorrect=f.keep_incorrect)
    stats = build_dataset(data, filt, out / "dataset")
    print(stats.describe())
    return 0


@dataclass(frozen=True)
class ReportArgs:
    run_dir: str = setting(None, "a run folder", positional=True, required=True)
    out: str | None = setting(None, "output folder (default RUN_DIR/report)", path="dir")


@dataclass(frozen=True)
class CompareArgs:
    run_a: str = setting(None, "the first run folder", positional=True, required=True)
    run_b: str = setting(None, "the second run folder", positional=True, required=True)
    out: str | None = setting(None, "also write the markdown to this file", path="write")


def report_main(argv: list[str]) -> int:
    from evals.report import write_report
    from evals.store import read_run

    a = ConfigParser("tirmath report", (ReportArgs,), description="Markdown summary, PNG plots and a "
                     "self-contained HTML viewer for a run.").parse(argv)[ReportArgs]
    data = read_run(a.run_dir)
    out = Path(a.out) if a.out else Path(a.run_dir) / "report"
    paths = write_report(data, out)
    print(paths.markdown.read_text(encoding="utf-8"))
    print(f"wrote {paths.markdown}, {paths.html}, {len(paths.plots)} plots", file=sys.stderr)
    return 0


def compare_main(argv: list[str]) -> int:
    from agent.paths import atomic_write
    from evals.compare import compare_runs
    from evals.store import read_run

    a = ConfigParser("tirmath compare", (CompareArgs,), description="Two runs side by side, per metric and "
                     "per problem.").parse(argv)[CompareArgs]
    text = compare_runs(read_run(a.run_a), read_run(a.run_b), a.run_a, a.run_b)
    if a.out:
        atomic_write(a.out, text)
    print(text)
    return 0
