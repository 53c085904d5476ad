"""`tirmath eval | report | compare | gen-tir | merge-runs`: thin command lines over the evals library.

Each `*_main(argv)` parses its flags, checks every input (dataset rows, options, an existing
run folder's config) before any model is loaded, then calls library code: `runner.run_problems`,
`report.write_report`, `compare.compare_runs`, `gentir.build_dataset`. User mistakes raise
`UserError` (one line, exit 2). Opening engines, servers and the kernel pool happens here.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from agent.errors import UserError
from agent.types import Problem
from evals.datasets import FieldMap, load_problems, parse_ids
from evals.runner import RunConfig


def _add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--dataset", required=True, help="short name (aime2025, math500, ...), a .jsonl/.csv/.parquet "
                   "file, a save_to_disk folder, or a Hugging Face hub id")
    g.add_argument("--split", help="split of a Hugging Face dataset (default: test, else the first)")
    g.add_argument("--problem-field", default="problem")
    g.add_argument("--answer-field", default="answer")
    g.add_argument("--id-field", default="id")
    g.add_argument("--integer-only", action="store_true", help="keep only rows with integer answers")
    g.add_argument("--limit", type=int, help="first N problems (after filters)")
    g.add_argument("--ids", help="comma-separated problem ids")
    g.add_argument("--modulus", type=int, help="reduce integer answers mod this (AIMO: 1000)")
    g.add_argument("--shard", metavar="K/N", help="run only shard K of N (problems K-1, K-1+N, ...), each shard "
                   "its own run store; join them with `tirmath merge-runs`")


def _add_agent_args(p: argparse.ArgumentParser, tir_ratio: bool = True) -> None:
    from agent.cli_solve import add_model_args, add_sampling_args

    add_model_args(p)
    s = add_sampling_args(p, samples=4, tir_ratio=tir_ratio)
    s.add_argument("--time-budget", type=float, help="seconds per problem; with --kaggle, for the whole run "
                   "(default there: 6 minutes a problem, i.e. 50 problems in 5 hours)")
    r = p.add_argument_group("run")
    r.add_argument("--concurrency", type=int, default=4, help="problems in flight per backend (default 4)")
    r.add_argument("--sample-concurrency", type=int, help="samples in flight per problem (default: all)")
    r.add_argument("--sandbox", choices=("auto", "strict", "none"), default="auto", help="kernel isolation")
    r.add_argument("--kernels", type=int, help="warm kernels in the pool (default: enough for the TIR samples "
                   "in flight, at most 16)")
    r.add_argument("--quiet", action="store_true", help="no progress line")


def _fields(a: argparse.Namespace) -> FieldMap:
    return FieldMap(problem=a.problem_field, answer=a.answer_field, id=a.id_field)


def _problems(a: argparse.Namespace) -> list[Problem]:
    if a.limit is not None and a.limit < 1:
        raise UserError("--limit must be at least 1")
    return load_problems(a.dataset, fields=_fields(a), split=a.split, integer_only=a.integer_only,
                         limit=a.limit, ids=parse_ids(a.ids), modulus=a.modulus)


def _run_config(a: argparse.Namespace, tir_ratio: float, kaggle: bool = False, scheduler: str = "bank",
                record_tokens: bool = False) -> RunConfig:
    from agent.budget import make_scheduler
    from agent.cli_solve import check_sampling_args

    check_sampling_args(a, tir_ratio)
    if a.concurrency < 1:
        raise UserError("--concurrency must be >= 1")
    make_scheduler(scheduler, 1.0, 1)
    model = a.model or ("server" if a.server else "default")
    return RunConfig(
        samples=a.samples, tir_ratio=tir_ratio, max_tokens=a.max_tokens, max_tool_calls=a.max_tool_calls,
        cell_timeout=a.cell_timeout, temperature=a.temperature, top_p=a.top_p, seed=a.seed, policy=a.policy,
        weight=a.weight, kaggle=kaggle, time_budget=a.time_budget, scheduler=scheduler,
        prompt_family=a.prompt_family, record_tokens=record_tokens, model=model,
        concurrency=1 if kaggle else a.concurrency, sample_concurrency=a.sample_concurrency,
    )


async def _open_backends(a: argparse.Namespace) -> list[Any]:
    from agent.backends import open_backend
    from agent.cli_solve import backend_options

    opts = backend_options(a)
    if a.server:  # one pool over all servers: spread by load, a dead server's requests go on elsewhere
        from agent.backends.failover import FailoverBackend

        return [await FailoverBackend.open(a.server, model=a.model)]
    return [await open_backend(model=a.model, engine=a.engine, **opts)]


async def _execute(a: argparse.Namespace, problems: list[Problem], config: RunConfig, store: Any,
                   label: str) -> Any:
    """Open backends and the kernel pool, run, close everything."""
    from evals.progress import Progress
    from evals.runner import run_problems

    pool = None
    backends: list[Any] = []
    try:
        if config.tir_ratio > 0:
            from agent.solve import plan_modes
            from sandbox.pool import KernelPool, SandboxConfig

            n_tir = plan_modes(config.samples, config.tir_ratio).count("tir")
            per_problem = min(n_tir, config.sample_concurrency or n_tir)
            in_flight = per_problem * config.concurrency * max(1, len(a.server or []))
            pool = KernelPool(a.kernels or max(1, min(16, in_flight)), SandboxConfig(isolation=a.sandbox))
            await pool.start()
        backends = await _open_backends(a)
        progress = Progress(len(problems) * config.samples, len(problems), enabled=not a.quiet, label=label)
        return await run_problems(problems, backends, pool, config, store, progress)
    finally:
        for b in backends:
            await b.close()
        if pool is not None:
            await pool.close()


def _run_store(a: argparse.Namespace, run_dir: str, problems: list[Problem], config: RunConfig, label: str) -> Any:
    from evals.runner import open_store
    from evals.shards import parse_shard

    shard = parse_shard(a.shard)
    meta = {"servers": a.server or [], "command": label}
    store = open_store(run_dir, problems, config, a.dataset, meta, shard=shard)
    mine = problems if shard is None else shard.select(problems)
    try:
        todo = [p for p in mine if p.id not in store.data.problems]
        if todo:
            asyncio.run(_execute(a, mine, config, store, label))
        return store.data
    finally:
        store.close()


def eval_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="tirmath eval", description="Evaluate the agent on a dataset into a "
                                "resumable run store (kill it any time; rerun the same command to finish).")
    _add_data_args(p)
    p.add_argument("--out", required=True, help="run folder (created, or resumed when it holds this run)")
    p.add_argument("--kaggle", action="store_true", help="one problem at a time, random order, global time budget")
    p.add_argument("--scheduler", default="bank", help="Kaggle time scheduler: flat | bank[:F[:X]]")
    _add_agent_args(p)
    a = p.parse_args(argv)
    config = _run_config(a, a.tir_ratio, kaggle=a.kaggle, scheduler=a.scheduler)
    problems = _problems(a)
    data = _run_store(a, a.out, problems, config, "eval")
    from evals.metrics import run_metrics
    from evals.report import format_summary

    print(format_summary(run_metrics(data), kaggle=config.kaggle, data=data))
    return 0


def gen_tir_main(argv: list[str]) -> int:
    from evals.gentir import FilterConfig, build_dataset

    p = argparse.ArgumentParser(prog="tirmath gen-tir", description="Generate a filtered TIR training dataset "
                                "(Hugging Face save_to_disk folder); resumable like eval.")
    _add_data_args(p)
    p.add_argument("--out", required=True, help="folder: run store in OUT/run, dataset in OUT/dataset")
    f = p.add_argument_group("filters")
    f.add_argument("--keep", type=int, default=4, help="at most K traces per problem, shortest first (default 4)")
    f.add_argument("--min-tokens", type=int, default=0, help="drop traces shorter than this")
    f.add_argument("--max-keep-tokens", type=int, default=None, help="drop traces longer than this")
    f.add_argument("--allow-cell-errors", action="store_true", help="keep traces with Python errors in cells "
                   "(recovered mistakes); crashes, timeouts and out-of-memory are always dropped")
    f.add_argument("--dedup", type=float, default=0.8, help="near-duplicate threshold (word 5-gram Jaccard)")
    f.add_argument("--keep-incorrect", action="store_true", help="keep wrong answers too (data exploration)")
    _add_agent_args(p, tir_ratio=False)
    a = p.parse_args(argv)
    if a.keep < 1:
        raise UserError("--keep must be at least 1")
    config = _run_config(a, 1.0, record_tokens=False)
    problems = _problems(a)
    out = Path(a.out)
    data = _run_store(a, str(out / "run"), problems, config, "gen-tir")
    filt = FilterConfig(keep=a.keep, min_tokens=a.min_tokens, max_tokens=a.max_keep_tokens,
                        allow_cell_errors=a.allow_cell_errors, dedup=a.dedup, keep_incorrect=a.keep_incorrect)
    stats = build_dataset(data, filt, out / "dataset")
    print(stats.describe())
    return 0


def report_main(argv: list[str]) -> int:
    from evals.report import write_report
    from evals.store import read_run

    p = argparse.ArgumentParser(prog="tirmath report", description="Markdown summary, PNG plots and a "
                                "self-contained HTML viewer for a run.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--out", help="output folder (default RUN_DIR/report)")
    a = p.parse_args(argv)
    data = read_run(a.run_dir)
    out = Path(a.out) if a.out else Path(a.run_dir) / "report"
    paths = write_report(data, out)
    print(paths.markdown.read_text(encoding="utf-8"))
    print(f"wrote {paths.markdown}, {paths.html}, {len(paths.plots)} plots", file=sys.stderr)
    return 0


def compare_main(argv: list[str]) -> int:
    from evals.compare import compare_runs
    from evals.store import read_run

    p = argparse.ArgumentParser(prog="tirmath compare", description="Two runs side by side, per metric and "
                                "per problem.")
    p.add_argument("run_a", metavar="RUN_A")
    p.add_argument("run_b", metavar="RUN_B")
    p.add_argument("--out", help="also write the markdown to this file")
    a = p.parse_args(argv)
    text = compare_runs(read_run(a.run_a), read_run(a.run_b), a.run_a, a.run_b)
    if a.out:
        Path(a.out).write_text(text, encoding="utf-8")
    print(text)
    return 0


def merge_runs_main(argv: list[str]) -> int:
    from evals.shards import merge_runs

    p = argparse.ArgumentParser(prog="tirmath merge-runs", description="Merge the run stores of --shard K/N runs "
                                "into one run store (checks they are shards of one run; lists missing problems).")
    p.add_argument("shard_dirs", metavar="SHARD_DIR", nargs="+")
    p.add_argument("--out", required=True, help="new folder for the merged run store")
    a = p.parse_args(argv)
    print(merge_runs(a.shard_dirs, a.out).describe())
    return 0
