"""Metrics of a run, computed from stored sample and problem records: pure functions.

One vote: only voting samples count (`agent.vote.is_voter`: not aborted, not failed), and every
majority here is `agent.vote.vote`, the code the live agent votes with. Aborted and errored
samples are counted beside (`aborted`, `errors`), never in pass@1 or maj@k.

Per group of samples (all, CoT only, TIR only): pass@1 (mean over a problem's voting samples,
then over problems; a problem with no voting sample counts 0), maj@k (the uniform vote of the
first k voting samples by index), unbiased pass@k (the Codex estimator 1 - C(n-c, k) / C(n, k)
over voting samples, averaged over problems with at least k), answer-less, timed-out and
truncated samples, token and tool statistics. The agent's own answer (with its weights and
stopping policy) is the problem record's, shown as such (`agent_answer`) and scored as
`voted_accuracy`; `revote` recomputes it from the stored samples to check the two agree.

Accuracy against a token budget B (4k, 8k, 12k, 16k, 24k, 32k below the run's cap, and quarters of
the cap) is read off the stored traces: a sample's answer sits at the
end of its trace, so a sample that used at most B generated tokens (`Trace.tokens`: model tokens
over all rounds, tool outputs excluded) would have finished the same under a cap of B, and one
that used more counts as unanswered at B. This is conservative: an answer boxed earlier in a
longer trace is not credited. Not covered: grading (done once, when a sample is stored).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from agent.vote import is_voter, make_weight, vote
from evals.store import ProblemRecord, RunData, SampleRecord

BUDGETS = (4096, 8192, 12288, 16384, 24576, 32768)
GROUPS = ("all", "cot", "tir")


@dataclass(frozen=True)
class GroupMetrics:
    group: str
    problems: int
    samples: int  # all stored samples
    voting: int  # samples that vote (not aborted, not errored): pass@1 and maj@k are over these
    pass1: float
    maj_at: tuple[tuple[int, float], ...]  # (k, accuracy)
    pass_at: tuple[tuple[int, float], ...]  # (k, unbiased pass@k)
    answerless: int
    timed_out: int  # finish == "time"
    truncated: int  # finish == "length"
    errors: int  # finish == "error" (not voting)
    aborted: int  # finish == "aborted" (not voting: cancelled once the vote was settled)
    mean_tokens: float
    median_tokens: float
    tool_calls: int
    tool_statuses: tuple[tuple[str, int], ...]
    finishes: tuple[tuple[str, int], ...]
    mean_seconds: float


@dataclass(frozen=True)
class BudgetPoint:
    budget: int
    pass1: float
    maj: float
    answered: float  # fraction of samples with an integer answer within the budget


@dataclass(frozen=True)
class RunMetrics:
    groups: tuple[GroupMetrics, ...]
    problems_total: int
    problems_done: int
    voted_correct: int
    voted_accuracy: float | None  # over finished problems with a reference answer
    problem_seconds: float  # sum of problems' wall times
    budget_curve: tuple[BudgetPoint, ...]

    def group(self, name: str) -> GroupMetrics | None:
        return next((g for g in self.groups if g.group == name), None)


@dataclass(frozen=True)
class ProblemRow:
    problem_id: str
    reference: str | None
    samples: int  # all stored samples
    voting: int  # of which voting
    correct: int  # correct voting samples
    majority: int | None  # uniform agent.vote over the voting samples (not the agent's answer)
    voted: int | None  # the answer the agent gave (its problem record)
    voted_correct: bool | None
    mean_tokens: float
    tool_calls: int
    seconds: float
    stop_reason: str


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for n samples of which c are correct (Chen et al. 2021)."""
    if k > n:
        raise ValueError(f"k={k} > n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def voting(records: Sequence[SampleRecord]) -> list[SampleRecord]:
    """The records whose samples vote (agent.vote.is_voter), in the given order."""
    return [r for r in records if is_voter(r.trace)]


def majority(records: Sequence[SampleRecord]) -> int | None:
    """The uniform vote (agent.vote.vote) of the records' samples, in the given order, or None."""
    return vote([r.trace for r in records]).answer


def _maj_correct(records: Sequence[SampleRecord]) -> bool:
    top = majority(records)
    return top is not None and any(r.correct for r in voting(records) if r.answer == top)


def _ks(max_n: int) -> list[int]:
    ks, k = [], 1
    while k <= max_n:
        ks.append(k)
        k *= 2
    if max_n not in ks and max_n > 0:
        ks.append(max_n)
    return ks


def _mean(xs: Iterable[float]) -> float:
    xs = list(xs)
    return sum(xs) / len(xs) if xs else 0.0


def group_metrics(name: str, by_problem: dict[str, list[SampleRecord]]) -> GroupMetrics:
    """Metrics over samples grouped by problem (each list sorted by index)."""
    by_problem = {p: rs for p, rs in by_problem.items() if rs}
    flat = [r for rs in by_problem.values() for r in rs]
    votes = [voting(rs) for rs in by_problem.values()]
    max_n = max((len(vs) for vs in votes), default=0)
    maj = tuple((k, _mean(float(_maj_correct(vs[:k])) for vs in votes)) for k in _ks(max_n))
    pak = []
    for k in _ks(max_n):
        vals = [pass_at_k(len(vs), sum(r.correct for r in vs), k) for vs in votes if len(vs) >= k]
        pak.append((k, _mean(vals)))
    tokens = [r.tokens for r in flat]
    statuses = Counter(s for r in flat for s in r.tool_statuses)
    return GroupMetrics(
        group=name, problems=len(by_problem), samples=len(flat), voting=sum(len(vs) for vs in votes),
        pass1=_mean(_mean(float(r.correct) for r in vs) for vs in votes),
        maj_at=maj, pass_at=tuple(pak),
        answerless=sum(r.answer is None for r in flat),
        timed_out=sum(r.finish == "time" for r in flat),
        truncated=sum(r.finish == "length" for r in flat),
        errors=sum(r.finish == "error" for r in flat),
        aborted=sum(r.finish == "aborted" for r in flat),
        mean_tokens=_mean(tokens), median_tokens=float(statistics.median(tokens)) if tokens else 0.0,
        tool_calls=sum(r.tool_calls for r in flat), tool_statuses=tuple(sorted(statuses.items())),
        finishes=tuple(sorted(Counter(r.finish for r in flat).items())),
        mean_seconds=_mean(r.seconds for r in flat),
    )


def budget_curve(by_problem: dict[str, list[SampleRecord]], budgets: Sequence[int] = BUDGETS) -> tuple[BudgetPoint, ...]:
    """Accuracy if every sample had been capped at each budget (see the module docstring)."""
    points = []
    groups = [voting(rs) for rs in by_problem.values() if rs]
    flat = [r for rs in groups for r in rs]
    for b in budgets:
        within = [[r for r in rs if r.tokens <= b] for rs in groups]
        pass1 = _mean(sum(r.correct for r in w) / max(len(rs), 1) for w, rs in zip(within, groups, strict=True))
        maj = _mean(float(_maj_correct(w)) for w in within)
        answered = sum(r.answer is not None for w in within for r in w) / len(flat) if flat else 0.0
        points.append(BudgetPoint(budget=b, pass1=pass1, maj=maj, answered=answered))
    return tuple(points)


def _split(data: RunData, mode: str | None) -> dict[str, list[SampleRecord]]:
    out = {}
    for pid, by_index in data.samples.items():
        out[pid] = [r for _, r in sorted(by_index.items()) if mode is None or r.mode == mode]
    return out


def default_budgets(max_tokens: int | None) -> tuple[int, ...]:
    """BUDGETS below the run's token cap plus quarters of the cap (all of BUDGETS when unknown)."""
    if not max_tokens:
        return BUDGETS
    return tuple(sorted({b for b in BUDGETS if b < max_tokens} | {max_tokens * k // 4 for k in (1, 2, 3, 4)}))


def run_metrics(data: RunData, budgets: Sequence[int] | None = None) -> RunMetrics:
    if budgets is None:
        budgets = default_budgets(data.manifest.get("config", {}).get("max_tokens"))
    groups = tuple(group_metrics(g, _split(data, None if g == "all" else g)) for g in GROUPS)
    graded = [p for p in data.problems.values() if p.correct is not None]
    voted = sum(bool(p.correct) for p in graded)
    return RunMetrics(
        groups=groups,
        problems_total=len(data.manifest.get("problems", [])) or len(data.problems),
        problems_done=len(data.problems),
        voted_correct=voted,
        voted_accuracy=voted / len(graded) if graded else None,
        problem_seconds=sum(p.seconds for p in data.problems.values()),
        budget_curve=budget_curve(_split(data, None), budgets),
    )


def problem_rows(data: RunData) -> list[ProblemRow]:
    """One row per problem that has samples or a problem record, in the manifest's order."""
    order = list(data.manifest.get("problems", []))
    order += [p for p in list(data.samples) + list(data.problems) if p not in order]
    rows = []
    for pid in order:
        recs = completion_order(data, pid)
        prec: ProblemRecord | None = data.problems.get(pid)
        if not recs and prec is None:
            continue
        ref = prec.problem.answer if prec else data.manifest.get("answers", {}).get(pid)
        rows.append(ProblemRow(
            problem_id=pid, reference=ref, samples=len(recs), voting=len(voting(recs)),
            correct=sum(r.correct for r in voting(recs)),
            majority=majority(recs), voted=prec.answer if prec else None,
            voted_correct=prec.correct if prec else None, mean_tokens=_mean(r.tokens for r in recs),
            tool_calls=sum(r.tool_calls for r in recs), seconds=prec.seconds if prec else 0.0,
            stop_reason=prec.stop_reason if prec else "unfinished",
        ))
    return rows


def completion_order(data: RunData, problem_id: str) -> list[SampleRecord]:
    """A problem's stored samples in the order they finished (the run store appends them so)."""
    return list(data.samples.get(problem_id, {}).values())


def revote(data: RunData, problem_id: str) -> int | None:
    """The agent's vote recomputed from the stored samples: the run's weight scheme over the
    voting samples in completion order, as `agent.solve` counted them. Equals the problem
    record's answer for a problem the agent finished (early stops included)."""
    weight = make_weight(data.manifest.get("config", {}).get("weight") or "uniform")
    return vote([r.trace for r in completion_order(data, problem_id)], weight).answer
