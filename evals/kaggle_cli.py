"""`tirmath kaggle-local`: rehearse a Kaggle submission with the local gateway.

    tirmath kaggle-local --csv test.csv --competition aimo3 --time-budget 18000 [solver flags]
    tirmath kaggle-local --csv reference.csv --notebook examples/aimo3_submission.ipynb

`--time-budget` is the whole run's (as in `eval --kaggle`). Without `--notebook`, the predict is
`evals.kaggle.make_predict` built from the solver flags (the config tree), its run store in
OUT/run: kill the rehearsal and run the same command again, and the problems already answered
come from the store. With `--notebook`, the notebook or script runs as written, with the local
gateway in place of `kaggle_evaluation`. Bad input (a CSV without id/problem columns, a duplicate
id, a budget too small for the problems, a model that fails to load) is one line and exit code 2
before the gateway starts. The work is in evals.kaggle and evals.kaggle_local.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from agent.cli_args import ConfigParser, with_builtin_defaults
from agent.config import EngineConfig, RolloutConfig, SandboxSettings, SolveConfig, setting
from agent.errors import UserError
from evals.kaggle import KaggleConfig
from evals.kaggle_local import GatewayConfig, GatewayReport, read_test_csv, run_gateway, run_notebook, summary


@dataclass(frozen=True)
class GatewayArgs:
    """The flags of `tirmath kaggle-local` that are not settings of the config tree."""

    csv: str = setting(None, "the test CSV (columns id, problem, and optionally answer)", required=True)
    order_seed: int = setting(0, "seed of the shuffled row order")
    startup_limit: float = setting(900.0, "seconds from the start until the first answer", lo=0, lo_open=True)
    out: str = setting("kaggle_local", "folder for submission.parquet and the run store (OUT/run)", path="dir")
    notebook: str | None = setting(None, "take predict from this notebook (.ipynb) or script (.py) instead",
                                   path="read")
    verbose: bool = setting(False, "show the engine's own log lines")


GROUPS = (GatewayArgs, KaggleConfig, EngineConfig, RolloutConfig, SolveConfig, SandboxSettings)


def check_budget(kaggle: KaggleConfig, total: float, problems: int) -> None:
    """UserError when the run's budget leaves less than `min_budget` seconds a problem."""
    share = (total - kaggle.reserve_seconds(total)) / problems
    if share < kaggle.min_budget:
        need = kaggle.min_budget * problems + kaggle.reserve_seconds(total)
        raise UserError(f"--time-budget {total:g} is too small: {max(share, 0):.2f} s a problem for {problems} "
                        f"problems (after a {kaggle.reserve_seconds(total):g} s reserve); give at least {need:g} s")


def _rehearse(g: dict[type, object], gateway: GatewayConfig, problems: int) -> GatewayReport:
    from evals.kaggle import make_predict

    args, kaggle = g[GatewayArgs], g[KaggleConfig]
    engine, config, sandbox = g[EngineConfig], g[SolveConfig], g[SandboxSettings]
    assert isinstance(args, GatewayArgs) and isinstance(kaggle, KaggleConfig)
    assert isinstance(engine, EngineConfig) and isinstance(config, SolveConfig)
    assert isinstance(sandbox, SandboxSettings)
    if kaggle.run_dir == KaggleConfig.run_dir:
        kaggle = replace(kaggle, run_dir=str(Path(args.out) / "run"))
    kaggle = replace(kaggle, problems=kaggle.problems or problems)
    total = kaggle.total(config.time_budget)
    check_budget(kaggle, total, problems)
    if not engine.server:
        from agent.models import resolve_model

        resolve_model(engine.model)  # a missing folder fails here, before any engine starts
    predict = make_predict(kaggle, config=config, engine=engine, sandbox=sandbox)
    try:
        predict.solver.wait_ready()  # a model that fails to load: one line (its load time counts)
        return run_gateway(predict, replace(gateway, time_budget=total), started=predict.created)
    finally:
        predict.close()


def main(argv: list[str]) -> int:
    parser = ConfigParser("tirmath kaggle-local", GROUPS, description="Rehearse a Kaggle AIMO submission with a "
                          "local gateway: shuffled rows one at a time, deadlines, response checks, a score.")
    g = parser.parse(with_builtin_defaults(argv))
    args, kaggle, config = g[GatewayArgs], g[KaggleConfig], g[SolveConfig]
    rows = read_test_csv(args.csv)
    gateway = GatewayConfig(csv=args.csv, competition=kaggle.competition, time_budget=config.time_budget,
                            seed=args.order_seed, startup_limit=args.startup_limit,
                            out=str(Path(args.out) / "submission.parquet"))
    if args.notebook:
        run_notebook(args.notebook, gateway)
    else:
        print(summary(_rehearse(g, gateway, len(rows))))
    return 0
