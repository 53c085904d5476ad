"""Reports of a run: a markdown summary, PNG plots (matplotlib, Agg) and the HTML viewer.

`format_summary` is the short text `tirmath eval` prints; `write_report` writes report.md,
accuracy_vs_budget.png, tokens.png and viewer.html (see html_view.py) into a folder. Numbers
come from metrics.py; this module only lays them out. Wall times are shown but are the only
figures that differ between an interrupted-and-resumed run and an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evals.metrics import GroupMetrics, RunMetrics, problem_rows, run_metrics
from evals.store import RunData


@dataclass(frozen=True)
class ReportPaths:
    markdown: Path
    html: Path
    plots: tuple[Path, ...]


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _group_table(groups: tuple[GroupMetrics, ...]) -> list[str]:
    shown = [g for g in groups if g.samples]
    ks = sorted({k for g in shown for k, _ in g.maj_at})
    head = ["metric"] + [g.group for g in shown]
    rows: list[list[str]] = [
        ["problems"] + [str(g.problems) for g in shown],
        ["samples"] + [str(g.samples) for g in shown],
        ["pass@1"] + [_pct(g.pass1) for g in shown],
    ]
    for k in ks:
        rows.append([f"maj@{k}"] + [_pct(dict(g.maj_at).get(k)) for g in shown])
    for k in ks[1:]:
        rows.append([f"pass@{k}"] + [_pct(dict(g.pass_at).get(k)) for g in shown])
    rows += [
        ["no answer"] + [str(g.answerless) for g in shown],
        ["timed out"] + [str(g.timed_out) for g in shown],
        ["hit token cap"] + [str(g.truncated) for g in shown],
        ["voting samples"] + [str(g.voting) for g in shown],
        ["aborted (not voting)"] + [str(g.aborted) for g in shown],
        ["errors (not voting)"] + [str(g.errors) for g in shown],
        ["mean tokens"] + [f"{g.mean_tokens:.0f}" for g in shown],
        ["median tokens"] + [f"{g.median_tokens:.0f}" for g in shown],
        ["tool calls"] + [str(g.tool_calls) for g in shown],
        ["tool outcomes"] + [", ".join(f"{s} {n}" for s, n in g.tool_statuses) or "-" for g in shown],
        ["mean sample s"] + [f"{g.mean_seconds:.1f}" for g in shown],
    ]
    return _md_table(head, rows)


def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return out


def format_summary(m: RunMetrics, kaggle: bool = False, data: RunData | None = None) -> str:
    """The short summary printed at the end of a run."""
    lines = [f"problems finished: {m.problems_done}/{m.problems_total}"]
    if m.voted_accuracy is not None:
        label = "Kaggle score" if kaggle else "voted accuracy"
        lines.append(f"{label}: {m.voted_correct}/{m.problems_done} ({_pct(m.voted_accuracy)})")
    lines.append(f"time in problems: {m.problem_seconds:.1f} s")
    lines += ["", *_group_table(m.groups)]
    if kaggle and data is not None:
        lines += ["", *_kaggle_table(data)]
    return "\n".join(lines)


def _kaggle_table(data: RunData) -> list[str]:
    recs = sorted(data.problems.values(), key=lambda r: r.position)
    rows = [[str(r.position + 1), r.problem.id, str(r.answer), str(r.problem.answer),
             {True: "yes", False: "no", None: "-"}[r.correct],
             "-" if r.time_budget is None else f"{r.time_budget:.1f}", f"{r.seconds:.1f}", r.stop_reason]
            for r in recs]
    return ["Time per problem (in the order served):", "",
            *_md_table(["#", "problem", "answer", "reference", "right", "budget s", "used s", "stop"], rows)]


def markdown_report(data: RunData, m: RunMetrics) -> str:
    cfg = data.manifest.get("config", {})
    lines = ["# tirmath run report", "",
             f"- dataset: `{cfg.get('dataset', '?')}`, model: `{cfg.get('model', '?')}`, "
             f"tirmath {data.manifest.get('tirmath_version', '?')}",
             "- config: " + ", ".join(f"{k}={v}" for k, v in sorted(cfg.items()) if k not in ("dataset", "model")),
             "", "## Summary", "", format_summary(m, bool(cfg.get("kaggle")), data), "",
             "## Accuracy against token budget", "",
             "A sample longer than the budget counts as unanswered at that budget (its answer is at its end).", ""]
    lines += _md_table(["budget", "pass@1", "maj", "answered"],
                       [[str(p.budget), _pct(p.pass1), _pct(p.maj), _pct(p.answered)] for p in m.budget_curve])
    lines += ["", "![accuracy against budget](accuracy_vs_budget.png) ![tokens](tokens.png)", "",
              "## Problems", ""]
    lines += ["The agent answer is the answer the agent gave (its weights and stop policy); correct counts the "
              "voting samples (aborted and errored samples do not vote).", ""]
    rows = [[r.problem_id, str(r.reference), str(r.voted), {True: "yes", False: "no", None: "-"}[r.voted_correct],
             f"{r.correct}/{r.voting}", str(r.samples - r.voting), f"{r.mean_tokens:.0f}", str(r.tool_calls),
             r.stop_reason] for r in problem_rows(data)]
    lines += _md_table(["problem", "reference", "agent answer", "right", "correct", "not voting", "mean tok",
                        "tools", "stop"], rows)
    return "\n".join(lines) + "\n"


def plot_budget(m: RunMetrics, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [p.budget for p in m.budget_curve]
    ax.plot(xs, [p.pass1 for p in m.budget_curve], marker="o", label="pass@1")
    ax.plot(xs, [p.maj for p in m.budget_curve], marker="s", label="majority vote")
    ax.plot(xs, [p.answered for p in m.budget_curve], linestyle="--", label="answered")
    ax.set_xlabel("token budget per sample")
    ax.set_ylabel("fraction")
    ax.set_ylim(0, 1)
    ax.legend()
    ax.set_title("Accuracy against token budget")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_tokens(data: RunData, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = data.all_samples()
    fig, ax = plt.subplots(figsize=(6, 4))
    right = [r.tokens for r in recs if r.correct]
    wrong = [r.tokens for r in recs if not r.correct]
    ax.hist([right, wrong], bins=20, stacked=True, label=["correct", "wrong"])
    ax.set_xlabel("generated tokens per sample")
    ax.set_ylabel("samples")
    ax.legend()
    ax.set_title("Tokens per sample")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_report(data: RunData, out: Path) -> ReportPaths:
    from evals.html_view import render_html

    out.mkdir(parents=True, exist_ok=True)
    m = run_metrics(data)
    md = out / "report.md"
    md.write_text(markdown_report(data, m), encoding="utf-8")
    plots = (plot_budget(m, out / "accuracy_vs_budget.png"), plot_tokens(data, out / "tokens.png"))
    html = out / "viewer.html"
    html.write_text(render_html(data, m, plots), encoding="utf-8")
    return ReportPaths(markdown=md, html=html, plots=plots)
