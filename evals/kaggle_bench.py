"""`python -m evals.kaggle_bench`: a rehearsed Kaggle run under a tight clock, and where its time went.

Serves the AIMO3 reference problems (10) through the local gateway to `make_predict` on the
default model with a whole-run budget that is tight for it on this machine, and prints: the
budget, the time used, the engine's start, the time inside the solver, the problems cut short by
their deadline, and the idle time (the run's wall time not spent starting the engine or inside
the solver: gateway, predict bookkeeping, run store, scheduling) as a share of the budget (the
baseline, measured in the same run; target: under 1%). Not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def _csv(path: Path, n: int) -> Path:
    import polars as pl

    from agent.datasets import load_problems

    ps = load_problems("aimo3_reference", limit=n)
    pl.DataFrame({"id": [p.id for p in ps], "problem": [p.text for p in ps],
                  "answer": [int(p.answer or 0) for p in ps]}).write_csv(path)
    return path


def run(budget: float, problems: int, samples: int, scheduler: str, out: Path) -> None:
    from agent.config import RolloutConfig, SolveConfig
    from evals.kaggle import KaggleConfig, make_predict
    from evals.kaggle_local import GatewayConfig, run_gateway

    csv = _csv(out / "reference.csv", problems)
    config = SolveConfig(samples=samples, tir_ratio=0.5, time_budget=budget,
                         rollout=RolloutConfig(max_tokens=512, max_tool_calls=2))  # the built-in model's preset
    predict = make_predict(KaggleConfig(problems=problems, scheduler=scheduler, run_dir=str(out / "run")),
                           config=config)
    try:
        predict.solver.wait_ready()
        engine_start = time.monotonic() - predict.created
        report = run_gateway(predict, GatewayConfig(csv=str(csv), time_budget=budget, out=str(out / "sub.parquet")),
                             started=predict.created, echo=None)
    finally:
        predict.close()
    outs = predict.outcomes
    solving = sum(o.solving for o in outs)
    cut = [o for o in outs if o.stop == "time" or o.how.startswith("fallback:cut off")]
    idle = report.used - engine_start - solving
    right, graded = report.score or (0, 0)
    print(f"budget {budget:.0f} s for {problems} problems, {samples} samples each, scheduler {scheduler}")
    print(f"time used        {report.used:8.1f} s  ({report.used / budget:.1%} of the budget)")
    print(f"engine start     {engine_start:8.1f} s")
    print(f"inside solver    {solving:8.1f} s")
    print(f"idle (overhead)  {idle:8.2f} s  ({idle / budget:.2%} of the budget; target < 1%)")
    print(f"cut short        {len(cut)} of {len(outs)} problems (deadline reached)")
    print(f"fallback answers {sum(o.how.startswith('fallback') for o in outs)}; score {right}/{graded}")
    for o in outs:
        print(f"  {o.id}: {o.answer:>6} {o.how:<40} budget {o.budget or 0:6.1f} s, solver {o.solving:6.1f} s, "
              f"predict {o.seconds:6.1f} s")


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m evals.kaggle_bench", description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=900.0, help="seconds for the whole run (default 900)")
    p.add_argument("--problems", type=int, default=10, help="AIMO3 reference problems (default 10)")
    p.add_argument("--samples", type=int, default=4, help="samples per problem (default 4)")
    p.add_argument("--scheduler", default="bank", help="time scheduler (default bank)")
    p.add_argument("--out", help="folder for the run store (default: a temporary folder)")
    a = p.parse_args()
    if a.out:
        Path(a.out).mkdir(parents=True, exist_ok=True)
        run(a.budget, a.problems, a.samples, a.scheduler, Path(a.out))
    else:
        with tempfile.TemporaryDirectory(prefix="tirmath-kaggle-bench-") as d:
            run(a.budget, a.problems, a.samples, a.scheduler, Path(d))


if __name__ == "__main__":  # the engine's process re-imports the main script: work stays under main()
    main()
