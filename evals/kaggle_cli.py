"""`tirmath kaggle-local`: rehearse a Kaggle submission with the local gateway.

    tirmath kaggle-local --csv test.csv --competition aimo3 --time-budget 18000 [solver flags]
    tirmath kaggle-local --csv reference.csv --notebook examples/aimo3_submission.ipynb

Without `--notebook`, the predict is `evals.kaggle.make_predict` built from the solver flags,
its run store in OUT/run (kill the rehearsal and run the same command again: answered problems
come from the store). With `--notebook`, the notebook or script runs as written, with the local
gateway in place of `kaggle_evaluation`. Bad input (a CSV without id/problem columns, a duplicate
id, a budget too small, a model that fails to load) is one line and exit code 2, before the
gateway starts. The work is in evals.kaggle and evals.kaggle_local.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from agent.errors import UserError
from evals.kaggle import COMPETITIONS, KaggleConfig
from evals.kaggle_local import GatewayConfig, GatewayReport, read_test_csv, run_gateway, run_notebook, summary


def build_parser() -> argparse.ArgumentParser:
    from agent.cli_solve import add_model_args, add_sampling_args

    p = argparse.ArgumentParser(prog="tirmath kaggle-local", description="Rehearse a Kaggle AIMO submission with "
                                "a local gateway: shuffled rows, one at a time, deadlines, response checks.")
    g = p.add_argument_group("gateway")
    g.add_argument("--csv", required=True, help="the test CSV (columns id, problem, and optionally answer)")
    g.add_argument("--competition", choices=tuple(COMPETITIONS), default="aimo3")
    g.add_argument("--time-budget", type=float, help="seconds for the whole run (default: the competition's)")
    g.add_argument("--order-seed", type=int, default=0, help="seed of the row order (default 0)")
    g.add_argument("--startup-limit", type=float, default=15 * 60, help="seconds until the first answer (900)")
    g.add_argument("--out", default="kaggle_local", help="folder for submission.parquet and the run store")
    g.add_argument("--notebook", help="take predict from this notebook (.ipynb) or script (.py) instead")
    k = p.add_argument_group("predict")
    k.add_argument("--scheduler", default="bank", help="time scheduler: flat | bank[:F[:X]]")
    k.add_argument("--reserve", type=float, help="seconds kept back at the end (default 2%%, at most 60)")
    k.add_argument("--fallback", type=int, default=0, help="the fixed guess when nothing answered (0)")
    add_model_args(p)
    s = add_sampling_args(p, samples=8)
    s.add_argument("--concurrency", type=int, default=None, help="samples in flight (default: all)")
    s.add_argument("--sandbox", choices=("auto", "strict", "none"), default="auto", help="kernel isolation")
    return p


def _kaggle_config(a: argparse.Namespace, problems: int) -> KaggleConfig:
    if a.time_budget is not None and a.time_budget <= 0:
        raise UserError("--time-budget must be positive")
    k = KaggleConfig(competition=a.competition, time_budget=a.time_budget, problems=problems,
                     scheduler=a.scheduler, reserve=a.reserve, fallback=a.fallback,
                     run_dir=str(Path(a.out) / "run"))
    from agent.budget import make_scheduler

    make_scheduler(k.scheduler, k.total(), problems)  # a bad spec: one line
    if k.share() < k.min_budget:
        raise UserError(f"--time-budget {k.total():g} is too small: {k.share():.2f} s a problem for {problems} "
                        f"problems (after a {k.reserve_seconds():g} s reserve); give at least "
                        f"{k.min_budget * problems + k.reserve_seconds():g} s")
    return k


def _rehearse(a: argparse.Namespace, gateway: GatewayConfig, problems: int) -> GatewayReport:
    from agent.cli_solve import backend_options, config_from_args
    from evals.kaggle import make_predict

    kaggle = _kaggle_config(a, problems)
    a.time_budget = None  # the run's budget, not a problem's: the scheduler decides per problem
    config = config_from_args(a)
    if not a.server:
        from agent.models import resolve_model

        a.model = resolve_model(a.model)  # a missing folder fails here, before any engine starts
    if a.server and len(a.server) > 1:
        raise UserError("kaggle-local takes one --server")
    predict = make_predict(kaggle, config=config, model=a.model, server=a.server[0] if a.server else None,
                           engine=a.engine, engine_options=backend_options(a), sandbox=a.sandbox)
    try:
        predict.solver.wait_ready()  # a model that fails to load: one line (its load time counts)
        return run_gateway(predict, replace(gateway, time_budget=kaggle.total()), started=predict.created)
    finally:
        predict.close()


def main(argv: list[str]) -> int:
    a = build_parser().parse_args(argv)
    rows = read_test_csv(a.csv)
    if a.startup_limit <= 0:
        raise UserError("--startup-limit must be positive")
    gateway = GatewayConfig(csv=a.csv, competition=a.competition, time_budget=a.time_budget, seed=a.order_seed,
                            startup_limit=a.startup_limit, out=str(Path(a.out) / "submission.parquet"))
    if a.notebook:
        report = run_notebook(a.notebook, gateway)
    else:
        report = _rehearse(a, gateway, len(rows))
        print(summary(report))
    return 0
