"""`tirmath replay`: measure stop policies and time schedulers offline on recorded samples.

    tirmath replay SOURCE --policy NAME[:params] [--policy ...] [--orders N] [--seed S]
                   [--speed TOK_PER_S] [--concurrency C] [--clock tokens|latency]
                   [--assume-wrong distinct|same] [--weight SPEC] [--kaggle] [--scheduler flat|bank]
                   [--plot FILE.png] [--json] [--fit-weights OUT.json]

SOURCE is a run store folder (`tirmath eval`), a folder with samples.jsonl, or a recorded file
such as shared/data/recorded/*.jsonl (see evals/replay_sources.py). For each policy, over many
arrival orders: accuracy (voted answer correct), tokens and time spent, against fixed-n majority
on the same samples, with the spread across orders; the caveats of the source are printed.
`--kaggle` chains problems under a global clock (default 50 problems, 5 hours) with each
scheduler and reports problems cut by, and lost to, the clock. Figures are measured, not asserted.
The simulation itself is evals/replay_sim.py; policies are agent/policy.py, schedulers agent/budget.py.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from agent.budget import make_scheduler
from agent.errors import UserError
from agent.policy import StopPolicy, make_policy
from agent.vote import WeightFn, make_weight
from evals.replay_report import PolicyStats, fit_report, kaggle_lines, plot_tradeoff, policy_lines
from evals.replay_sim import Outcome, Timing, arrivals, kaggle_run, simulate_problem
from evals.replay_sources import RecordedProblem, Source, read_source
from sandbox.errors import ArgumentParser

DEFAULT_POLICIES = ("consistency:4/5", "consistency:5/7", "agree:3", "posterior:0.8", "posterior:0.9", "posterior:0.95")
DEFAULT_SPEED = 50.0
KAGGLE_SPEED = 40.0


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog="tirmath replay", description=__doc__.split("\n\n")[0])
    p.add_argument("source", help="run store folder, folder with samples.jsonl, or recorded-samples JSONL")
    p.add_argument("--policy", action="append", default=[], help="stop policy spec (repeatable); fixed is always added")
    p.add_argument("--orders", type=int, default=20, help="random arrival orders per policy (order 0 is the plain one)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--speed", type=float, default=None,
                   help=f"decode tokens/s per running sample (default {DEFAULT_SPEED:g}; {KAGGLE_SPEED:g} with --kaggle)")
    p.add_argument("--concurrency", type=int, default=None, help="samples running at once (default: all)")
    p.add_argument("--clock", choices=("tokens", "latency"), default="tokens",
                   help="durations from tokens/speed, or from recorded latencies")
    p.add_argument("--assume-wrong", choices=("distinct", "same"), default="distinct",
                   help="for sources without answers: wrong answers all distinct, or all the same")
    p.add_argument("--weight", default="uniform", help="vote weight scheme (agent.vote.make_weight)")
    p.add_argument("--kaggle", action="store_true", help="simulate a Kaggle run under a global clock")
    p.add_argument("--kaggle-problems", type=int, default=50)
    p.add_argument("--kaggle-hours", type=float, default=5.0)
    p.add_argument("--scheduler", action="append", default=[], help="time scheduler spec (default: flat and bank)")
    p.add_argument("--plot", default=None, help="write accuracy-vs-tokens plot (PNG)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--fit-weights", default=None, metavar="OUT.json",
                   help="fit vote weights on half the problems, report on the other half, save")
    return p


@dataclass(frozen=True)
class Setup:
    source: Source
    policies: tuple[StopPolicy, ...]
    timing: Timing
    orders: int
    seed: int
    weight: WeightFn


def run_policy(setup: Setup, policy: StopPolicy) -> list[list[Outcome]]:
    """Outcomes [order][problem] of one policy with no time budget."""
    result = []
    for order in range(setup.orders):
        row = []
        for i, problem in enumerate(setup.source.problems):
            plan = arrivals(problem, setup.timing, order, setup.seed + i)
            row.append(simulate_problem(problem, policy, plan, None, None, setup.weight))
        result.append(row)
    return result


def _stats(name: str, runs: list[list[Outcome]], base: list[list[Outcome]] | None) -> PolicyStats:
    acc = np.array([sum(o.correct for o in row) for row in runs], dtype=float)
    tok = np.array([sum(o.tokens for o in row) for row in runs])
    sec = np.array([sum(o.seconds for o in row) for row in runs])
    used = np.array([np.mean([o.used for o in row]) for row in runs])
    b_acc = acc if base is None else np.array([sum(o.correct for o in row) for row in base], dtype=float)
    b_tok = tok if base is None else np.array([sum(o.tokens for o in row) for row in base])
    return PolicyStats(
        name=name, problems=len(runs[0]), acc_mean=float(acc.mean()), acc_sd=float(acc.std()),
        acc_min=float(acc.min()), acc_max=float(acc.max()), delta_mean=float((acc - b_acc).mean()),
        delta_min=float((acc - b_acc).min()), tokens_mean=float(tok.mean()), tokens_sd=float(tok.std()),
        saved=float(1.0 - tok.mean() / b_tok.mean()) if b_tok.mean() else 0.0,
        seconds_mean=float(sec.mean()), used_mean=float(used.mean()),
    )


def replay(setup: Setup) -> list[PolicyStats]:
    """Stats for fixed-n (first) and every other policy, on the same samples and orders."""
    base = run_policy(setup, make_policy("fixed"))
    out = [_stats("fixed", base, None)]
    for pol in setup.policies:
        if pol.name != "fixed":
            out.append(_stats(pol.name, run_policy(setup, pol), base))
    return out


def kaggle(setup: Setup, schedulers: Sequence[str], problems_n: int, hours: float) -> tuple[list[dict], list[str]]:
    """Kaggle runs: every scheduler x policy over the orders. Returns rows and caveats."""
    rng = np.random.default_rng(setup.seed)
    pool = setup.source.problems
    replace = len(pool) < problems_n
    picks = rng.choice(len(pool), size=problems_n, replace=replace)
    problems: list[RecordedProblem] = [pool[int(i)] for i in picks]
    notes = [f"Kaggle: {problems_n} problems drawn (seed {setup.seed}) from {len(pool)}"
             + (" WITH replacement (the source has fewer)" if replace else ""),
             f"Kaggle: {hours:g} h clock, {setup.timing.speed:g} tok/s per sample, "
             f"concurrency {setup.timing.concurrency or 'all samples'}; 'lost' = cut by the clock and wrong"
             " where the same policy without a clock is right"]
    rows = []
    for spec in schedulers:
        for pol in (make_policy("fixed"), *[p for p in setup.policies if p.name != "fixed"]):
            runs = []
            for order in range(setup.orders):
                sched = make_scheduler(spec, hours * 3600.0, problems_n)
                runs.append(kaggle_run(problems, pol, sched, hours * 3600.0, setup.timing, order, setup.seed, setup.weight))
            rows.append({
                "scheduler": spec, "policy": pol.name,
                "correct_mean": float(np.mean([sum(o.correct for o in r.outcomes) for r in runs])),
                "timeouts_mean": float(np.mean([sum(o.timed_out for o in r.outcomes) for r in runs])),
                "lost_mean": float(np.mean([r.lost for r in runs])), "lost_max": int(max(r.lost for r in runs)),
                "hours_used": float(np.mean([r.seconds for r in runs]) / 3600.0),
            })
    return rows, notes


def _setup(args: argparse.Namespace) -> Setup:
    if args.orders < 1:
        raise UserError("--orders must be at least 1")
    if args.concurrency is not None and args.concurrency < 1:
        raise UserError("--concurrency must be at least 1")
    speed = args.speed if args.speed is not None else (KAGGLE_SPEED if args.kaggle else DEFAULT_SPEED)
    if not math.isfinite(speed) or speed <= 0:
        raise UserError(f"--speed must be a positive number of tokens/s, got {speed:g}")
    if args.kaggle and (args.kaggle_problems < 1 or not math.isfinite(args.kaggle_hours) or args.kaggle_hours <= 0):
        raise UserError("--kaggle-problems must be at least 1 and --kaggle-hours positive")
    policies = tuple(make_policy(s) for s in (args.policy or DEFAULT_POLICIES))
    source = read_source(args.source, args.assume_wrong)
    if args.clock == "latency" and not source.has_latency:
        raise UserError(f"{args.source}: --clock latency needs recorded latencies, and this source has none")
    timing = Timing(speed, args.concurrency, args.clock)
    return Setup(source, policies, timing, args.orders, args.seed, make_weight(args.weight))


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    scheds = [make_scheduler(s, 1.0, 1).name for s in args.scheduler]  # validate early
    del scheds
    setup = _setup(args)
    stats = replay(setup)
    out: dict = {"source": setup.source.name, "caveats": list(setup.source.caveats),
                 "timing": vars(setup.timing) | {"orders": setup.orders, "seed": setup.seed},
                 "assume_wrong": args.assume_wrong, "policies": [vars(s) for s in stats]}
    text = policy_lines(setup.source, setup.timing, setup.orders, args.assume_wrong, stats)
    if args.kaggle:
        rows, notes = kaggle(setup, args.scheduler or ["flat", "bank"], args.kaggle_problems, args.kaggle_hours)
        out["kaggle"] = {"notes": notes, "rows": rows}
        text += kaggle_lines(rows, notes)
    if args.fit_weights:
        fit = fit_report(setup.source, args.fit_weights)
        out["fit_weights"] = fit
        coef = ", ".join(f"{k} {v:+.2f}" for k, v in fit["coef"].items() if v)
        text += ["", f"vote weights fitted on {fit['fit_problems']} problems ({fit['fit_samples']} answered samples),"
                 f" reported on the other {fit['report_problems']}: plain majority {fit['majority_correct']},"
                 f" fitted weights {fit['fitted_correct']} correct; saved to {args.fit_weights}",
                 f"coefficients (non-zero): {coef}"]
    if args.plot:
        plot_tradeoff(stats, args.plot, f"{setup.source.name} (wrong answers: {args.assume_wrong})")
        text.append(f"plot written: {args.plot}")
    print(json.dumps(out, indent=1) if args.json else "\n".join(text))
    return 0
