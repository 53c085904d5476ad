"""Two runs side by side: each metric (with the difference) and each shared problem.

Markdown only; the numbers come from metrics.py. Problems are matched by id; a problem in one
run only is listed as such. Not covered: significance tests (the per-problem table shows which
problems flipped, which is what matters at AIME sizes).
"""

from __future__ import annotations

from evals.metrics import GroupMetrics, ProblemRow, RunMetrics, problem_rows, run_metrics
from evals.store import RunData


def _fmt(x: float | None, pct: bool) -> str:
    if x is None:
        return "-"
    if pct:
        return f"{100 * x:.1f}%"
    return str(x) if isinstance(x, int) else f"{x:.1f}"


def _diff(a: float | None, b: float | None, pct: bool) -> str:
    if a is None or b is None:
        return "-"
    d = b - a
    if pct:
        return f"{100 * d:+.1f} pts"
    return f"{d:+d}" if isinstance(d, int) else f"{d:+.1f}"


def _metric_rows(ma: RunMetrics, mb: RunMetrics) -> list[tuple[str, float | None, float | None, bool]]:
    rows: list[tuple[str, float | None, float | None, bool]] = [
        ("voted accuracy", ma.voted_accuracy, mb.voted_accuracy, True),
        ("problems finished", ma.problems_done, mb.problems_done, False),
    ]
    for name in ("all", "cot", "tir"):
        ga, gb = ma.group(name), mb.group(name)
        if ga is None or gb is None or not (ga.samples or gb.samples):
            continue
        rows += _group_rows(name, ga, gb)
    rows.append(("time in problems (s)", ma.problem_seconds, mb.problem_seconds, False))
    return rows


def _group_rows(name: str, ga: GroupMetrics, gb: GroupMetrics) -> list[tuple[str, float | None, float | None, bool]]:
    rows: list[tuple[str, float | None, float | None, bool]] = [(f"{name}: pass@1", ga.pass1, gb.pass1, True)]
    ma, mb = dict(ga.maj_at), dict(gb.maj_at)
    for k in sorted(set(ma) & set(mb)):
        rows.append((f"{name}: maj@{k}", ma[k], mb[k], True))
    rows += [
        (f"{name}: samples", ga.samples, gb.samples, False),
        (f"{name}: no answer", ga.answerless, gb.answerless, False),
        (f"{name}: mean tokens", ga.mean_tokens, gb.mean_tokens, False),
        (f"{name}: tool calls", ga.tool_calls, gb.tool_calls, False),
    ]
    return rows


def _problem_table(ra: list[ProblemRow], rb: list[ProblemRow]) -> list[str]:
    a, b = {r.problem_id: r for r in ra}, {r.problem_id: r for r in rb}
    order = [r.problem_id for r in ra] + [r.problem_id for r in rb if r.problem_id not in a]
    verdict = {True: "right", False: "wrong", None: "-"}
    lines = ["| problem | A voted | A correct | B voted | B correct | change |", "|---|---|---|---|---|---|"]
    for pid in order:
        x, y = a.get(pid), b.get(pid)
        if x is None or y is None:
            only = "A" if y is None else "B"
            lines.append(f"| {pid} | {'-' if x is None else x.voted} | | {'-' if y is None else y.voted} | | only in {only} |")
            continue
        change = ""
        if x.voted_correct != y.voted_correct:
            change = "fixed" if y.voted_correct else "broken"
        lines.append(f"| {pid} | {x.voted} ({verdict[x.voted_correct]}) | {x.correct}/{x.voting} | "
                     f"{y.voted} ({verdict[y.voted_correct]}) | {y.correct}/{y.voting} | {change} |")
    return lines


def compare_runs(a: RunData, b: RunData, name_a: str = "A", name_b: str = "B") -> str:
    """Markdown comparing run A with run B (differences are B - A)."""
    ma, mb = run_metrics(a), run_metrics(b)
    lines = ["# tirmath compare", "", f"- A: `{name_a}` ({a.manifest.get('config', {}).get('model', '?')})",
             f"- B: `{name_b}` ({b.manifest.get('config', {}).get('model', '?')})", "",
             "| metric | A | B | B - A |", "|---|---|---|---|"]
    for label, x, y, pct in _metric_rows(ma, mb):
        lines.append(f"| {label} | {_fmt(x, pct)} | {_fmt(y, pct)} | {_diff(x, y, pct)} |")
    lines += ["", "## Per problem", "", *_problem_table(problem_rows(a), problem_rows(b))]
    return "\n".join(lines) + "\n"
