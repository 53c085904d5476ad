"""Printing, plotting and weight-fitting reports for `tirmath replay`.

Turns replay figures (PolicyStats, Kaggle rows) into text lines and a matplotlib (Agg) plot of
accuracy against tokens; `fit_report` fits vote weights on one half of a source's problems and
compares weighted with plain majority on the other half. No simulation happens here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import UserError
from agent.vote import vote
from agent.weights import fit_weights, save_weights, split_ids
from evals.replay_sim import Timing
from evals.replay_sources import Source

TARGET_SAVING = 0.30


@dataclass(frozen=True)
class PolicyStats:
    name: str
    problems: int
    acc_mean: float  # problems correct, mean over orders
    acc_sd: float
    acc_min: float
    acc_max: float
    delta_mean: float  # vs fixed-n on the same orders, in problems
    delta_min: float
    tokens_mean: float
    tokens_sd: float
    saved: float  # 1 - tokens / fixed tokens
    seconds_mean: float
    used_mean: float  # samples finished per problem before stopping

    @property
    def meets_target(self) -> bool:
        return self.delta_mean >= -1.0 and self.saved >= TARGET_SAVING


def policy_lines(source: Source, timing: Timing, orders: int, assume_wrong: str, stats: Sequence[PolicyStats]) -> list[str]:
    n_samples = sum(len(p.samples) for p in source.problems)
    lines = [
        f"replay {source.name}: {len(source.problems)} problems, {n_samples} samples",
        f"timing: {timing.clock} clock, {timing.speed:g} tok/s per sample, concurrency "
        f"{timing.concurrency or 'all'}; {orders} arrival orders (order 0 = recorded order, others random start order "
        "and per-sample speed jitter)",
        f"assumption about wrong answers (sources without answers only): {assume_wrong}",
    ]
    lines += [f"caveat: {c}" for c in source.caveats]
    lines.append("")
    head = f"{'policy':<18} {'acc (mean±sd) [min-max]':<28} {'Δ vs fixed':>10} {'tokens':>12} {'saved':>7} {'time s':>9} {'samples':>8}"
    lines += [head, "-" * len(head)]
    for s in stats:
        acc = f"{s.acc_mean:.1f}±{s.acc_sd:.1f} [{s.acc_min:.0f}-{s.acc_max:.0f}]/{s.problems}"
        lines.append(
            f"{s.name:<18} {acc:<28} {s.delta_mean:>+10.2f} {s.tokens_mean:>12,.0f} {s.saved:>7.1%}"
            f" {s.seconds_mean:>9,.0f} {s.used_mean:>8.2f}"
        )
    met = [s.name for s in stats[1:] if s.meets_target]
    lines.append("")
    lines.append(
        f"target (within 1 problem of fixed-{max(len(p.samples) for p in source.problems)} accuracy with >= "
        f"{TARGET_SAVING:.0%} fewer tokens, means over orders): " + (f"MET by {', '.join(met)}" if met else "NOT met")
    )
    return lines


def kaggle_lines(rows: Sequence[dict[str, Any]], notes: Sequence[str]) -> list[str]:
    lines = ["", *notes]
    head = f"{'scheduler':<10} {'policy':<18} {'correct':>8} {'cut by clock':>13} {'lost to clock':>14} {'max lost':>9} {'hours':>6}"
    lines += [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['scheduler']:<10} {r['policy']:<18} {r['correct_mean']:>8.1f} {r['timeouts_mean']:>13.1f}"
            f" {r['lost_mean']:>14.2f} {r['lost_max']:>9d} {r['hours_used']:>6.2f}"
        )
    return lines


def plot_tradeoff(stats: Sequence[PolicyStats], path: str, title: str) -> None:
    """Accuracy (mean ± sd over orders) against tokens for every policy; PNG via Agg."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("--plot needs matplotlib (pip install tirmath[evals])") from None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for s in stats:
        ax.errorbar(s.tokens_mean, s.acc_mean, xerr=s.tokens_sd, yerr=s.acc_sd, fmt="o", capsize=3, label=s.name)
    ax.set_xlabel("tokens spent (all problems)")
    ax.set_ylabel(f"problems correct (of {stats[0].problems})")
    ax.set_title(f"replay: {title}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        fig.savefig(Path(path), dpi=110)
    except OSError as e:
        raise UserError(f"{path}: cannot write plot ({e.strerror})") from None
    finally:
        plt.close(fig)


def fit_report(source: Source, out_path: str) -> dict[str, Any]:
    """Fit weights on one half of the problems, compare weighted vs plain majority on the other."""
    fit_ids, report_ids = split_ids([p.id for p in source.problems])
    labelled = [(s.trace, s.correct) for p in source.problems if p.id in fit_ids for s in p.samples]
    weights = fit_weights(labelled)
    try:
        save_weights(weights, out_path)
    except OSError as e:
        raise UserError(f"{out_path}: cannot write weights ({e.strerror})") from None
    report = [p for p in source.problems if p.id in report_ids]
    plain = sum(vote([s.trace for s in p.samples]).answer in p.correct_values for p in report)
    fitted = sum(vote([s.trace for s in p.samples], weights).answer in p.correct_values for p in report)
    return {
        "fit_problems": len(fit_ids), "report_problems": len(report), "fit_samples": weights.samples,
        "majority_correct": int(plain), "fitted_correct": int(fitted),
        "coef": dict(zip(weights.to_dict()["features"], weights.coef, strict=True)),  # type: ignore[call-overload]
    }
