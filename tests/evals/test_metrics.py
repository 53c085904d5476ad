"""Metrics against hand-computed tables."""

from __future__ import annotations

import math

import pytest

from agent.types import Answer, Problem, Trace
from evals.metrics import budget_curve, group_metrics, majority, pass_at_k, problem_rows, run_metrics
from evals.store import ProblemRecord, RunData, SampleRecord


def rec(pid: str, i: int, answer: int | None, correct: bool, tokens: int, mode: str = "cot",
        finish: str = "answer", statuses: tuple[str, ...] = ()) -> SampleRecord:
    ans = Answer(str(answer), answer, "boxed") if answer is not None else None
    t = Trace(pid, i, i, mode, (), ans, finish, tokens, len(statuses))  # type: ignore[arg-type]
    return SampleRecord(pid, i, i, mode, answer, str(answer), correct, tokens, len(statuses), statuses,
                        finish, 0.0, 1.0, t)


# Problem A (reference 5): answers 5, 5, 3, None -> 2 of 4 correct, majority 5 (right)
# Problem B (reference 9): answers 1, 1, 9, 2   -> 1 of 4 correct, majority 1 (wrong)
A = [rec("A", 0, 5, True, 1000, "tir", statuses=("ok", "error")), rec("A", 1, 5, True, 5000),
     rec("A", 2, 3, False, 2000, "tir", statuses=("ok",)), rec("A", 3, None, False, 9000, finish="length")]
B = [rec("B", 0, 1, False, 3000), rec("B", 1, 1, False, 3000, "tir"), rec("B", 2, 9, True, 7000),
     rec("B", 3, 2, False, 100, finish="time")]


def test_pass_at_k_codex_estimator() -> None:
    assert pass_at_k(4, 2, 1) == pytest.approx(0.5)
    assert pass_at_k(4, 2, 2) == pytest.approx(1 - 1 / 6)  # 1 - C(2,2)/C(4,2)
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert pass_at_k(4, 3, 2) == 1.0
    assert pass_at_k(10, 0, 5) == 0.0
    assert pass_at_k(10, 3, 4) == pytest.approx(1 - math.comb(7, 4) / math.comb(10, 4))


def test_majority_tie_goes_to_first_seen() -> None:
    top = majority([rec("X", 0, 7, False, 1), rec("X", 1, 3, True, 1), rec("X", 2, 3, True, 1), rec("X", 3, 7, False, 1)])
    assert top == 7
    assert majority([rec("X", 0, None, False, 1)]) is None


def test_group_metrics_table() -> None:
    g = group_metrics("all", {"A": A, "B": B})
    assert g.problems == 2 and g.samples == 8
    assert g.pass1 == pytest.approx((2 / 4 + 1 / 4) / 2)
    assert dict(g.maj_at) == {1: pytest.approx(0.5), 2: pytest.approx(0.5), 4: pytest.approx(0.5)}
    # maj@1: A first=5 right, B first=1 wrong. maj@2: A 5,5 right; B 1,1 wrong.
    assert dict(g.pass_at)[2] == pytest.approx(((1 - 1 / 6) + 0.5) / 2)
    assert (g.answerless, g.timed_out, g.truncated, g.errors, g.aborted, g.voting) == (1, 1, 1, 0, 0, 8)
    assert g.mean_tokens == pytest.approx(30100 / 8)
    assert g.median_tokens == pytest.approx(3000)
    assert g.tool_calls == 3 and dict(g.tool_statuses) == {"ok": 2, "error": 1}


def test_budget_curve_cuts_at_each_budget() -> None:
    pts = {p.budget: p for p in budget_curve({"A": A, "B": B}, (1000, 4096, 8192))}
    # 1000 tokens: A keeps sample 0 (1000 tok, right); B keeps sample 3 (100 tok, wrong)
    assert pts[1000].pass1 == pytest.approx((1 / 4 + 0) / 2)
    assert pts[1000].maj == pytest.approx(0.5)
    assert pts[1000].answered == pytest.approx(2 / 8)
    # 4096: A keeps 0 (5), 2 (3): tie -> 5 first -> right; B keeps 0,1,3: majority 1 wrong
    assert pts[4096].pass1 == pytest.approx((1 / 4 + 0) / 2) and pts[4096].maj == pytest.approx(0.5)
    # 8192: A adds 1 (5) -> 2/4; B adds 2 (9): 1/4; majority of B still 1
    assert pts[8192].pass1 == pytest.approx((2 / 4 + 1 / 4) / 2)


def test_run_metrics_split_by_mode_and_voted_accuracy() -> None:
    data = RunData(manifest={"problems": ["A", "B", "C"]},
                   samples={"A": {r.index: r for r in A}, "B": {r.index: r for r in B}})
    data.problems["A"] = ProblemRecord(Problem("A", "a", "5"), 5, True, ((5, 2.0, 2),), "all_done", 3.0, 4)
    data.problems["B"] = ProblemRecord(Problem("B", "b", "9"), 1, False, ((1, 2.0, 2),), "all_done", 4.0, 4)
    m = run_metrics(data)
    tir, cot = m.group("tir"), m.group("cot")
    assert tir is not None and cot is not None
    assert (tir.samples, cot.samples) == (3, 5)
    assert tir.pass1 == pytest.approx((1 / 2 + 0) / 2)  # A: tir samples 0 (right), 2 (wrong); B: 1 (wrong)
    assert cot.pass1 == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert (m.problems_total, m.problems_done, m.voted_correct) == (3, 2, 1)
    assert m.voted_accuracy == pytest.approx(0.5) and m.problem_seconds == pytest.approx(7.0)
    rows = problem_rows(data)
    assert [(r.problem_id, r.correct, r.majority, r.voted) for r in rows] == [("A", 2, 5, 5), ("B", 1, 1, 1)]


def test_default_budgets_follow_the_cap() -> None:
    from evals.metrics import BUDGETS, default_budgets

    assert default_budgets(None) == BUDGETS
    assert default_budgets(256) == (64, 128, 192, 256)
    assert default_budgets(16384) == (4096, 8192, 12288, 16384)
    assert default_budgets(32768) == BUDGETS


# Problem C (reference 4): sample 0 aborted and sample 3 failed, both holding 4; the voters say 7, 4, 7
C = [rec("C", 0, 4, True, 50, finish="aborted"), rec("C", 1, 7, False, 500), rec("C", 2, 4, True, 600),
     rec("C", 3, 4, True, 10, finish="error"), rec("C", 4, 7, False, 700)]


def test_only_voting_samples_count_in_pass1_and_maj() -> None:
    g = group_metrics("all", {"C": C})
    assert (g.samples, g.voting, g.aborted, g.errors) == (5, 3, 1, 1)
    assert g.pass1 == pytest.approx(1 / 3)  # voting: 7 (wrong), 4 (right), 7 (wrong); not 3/5
    # maj@1 over the first voting sample (7): wrong. maj@2: 7, 4 tie -> 7 seen first: wrong. maj@3: 7 wins.
    assert dict(g.maj_at) == {1: 0.0, 2: 0.0, 3: 0.0}
    assert dict(g.pass_at)[2] == pytest.approx(1 - math.comb(2, 2) / math.comb(3, 2))
    # counting aborted/errored samples as voters would make 4 win 3 to 2: they must not
    assert majority(C) == 7


def test_all_samples_aborted_scores_zero_not_error() -> None:
    g = group_metrics("all", {"D": [rec("D", 0, 1, True, 5, finish="aborted")]})
    assert (g.voting, g.pass1, dict(g.maj_at)) == (0, 0.0, {})
