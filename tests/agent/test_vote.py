"""Voting: weighted majority, tie-breaks and the named weight schemes on hand-built traces."""

from __future__ import annotations

import pytest

from agent.errors import UserError
from agent.types import Answer, Step, Trace
from agent.vote import make_weight, vote


def tr(value: int | None, index: int = 0, mode: str = "cot", steps: tuple[Step, ...] = (), tokens: int = 100) -> Trace:
    answer = None if value is None else Answer(raw=str(value), value=value, source="boxed")
    calls = sum(1 for s in steps if s.kind == "code")
    return Trace("p", index, index, mode, steps, answer, "answer", tokens, calls)  # type: ignore[arg-type]


def tir(value: int, printed: str, status: str = "ok", index: int = 0) -> Trace:
    steps = (
        Step("text", "Let me compute.\n"),
        Step("code", "```python\nprint(x)\n```\n"),
        Step("output", f"```output\n{printed}\n```\n", status=status),
        Step("text", f"So $\\boxed{{{value}}}$."),
    )
    return tr(value, index, "tir", steps)


def test_plain_majority_and_voters() -> None:
    v = vote([tr(5), tr(7), tr(5), tr(None), tr(9)])
    assert v.answer == 5
    assert v.voters == 4
    assert v.tally[0] == (5, 2.0, 2)


def test_no_voters() -> None:
    v = vote([tr(None), tr(None)])
    assert v.answer is None and v.voters == 0 and v.tally == ()
    assert vote([]).answer is None


def test_non_integer_answers_do_not_vote() -> None:
    frac = Trace("p", 0, 0, "cot", (), Answer(r"\frac{1}{2}", None, "boxed"), "answer", 10, 0)
    v = vote([frac, frac, tr(3)])
    assert v.answer == 3 and v.voters == 1


@pytest.mark.parametrize(
    "values,expected",
    [
        ([5, 7], 5),  # equal weight and count: the answer reached first wins
        ([7, 5], 7),
        ([7, 5, 5, 7], 7),  # 7's first voter finished first
        ([3, 8, 8, 3, 1], 3),
    ],
)
def test_tie_break_completion_order(values: list[int], expected: int) -> None:
    assert vote([tr(v, i) for i, v in enumerate(values)]).answer == expected


def test_tie_break_weight_before_count() -> None:
    # 4 has one heavy vote (3.0), 6 has two light votes (1.0 each): weight wins
    traces = [tr(6, 0), tr(6, 1), tr(4, 2, tokens=999)]
    v = vote(traces, weight=lambda t: 3.0 if t.tokens == 999 else 1.0)
    assert v.answer == 4


def test_tie_break_count_after_equal_weight() -> None:
    # 4: one vote of weight 2; 6: two votes of weight 1 -> equal weight, 6 has more votes
    traces = [tr(4, 0, tokens=999), tr(6, 1), tr(6, 2)]
    v = vote(traces, weight=lambda t: 2.0 if t.tokens == 999 else 1.0)
    assert v.answer == 6


def test_tie_break_smaller_value_last_resort() -> None:
    # same weight, same count, and (by construction) ties on first position are impossible,
    # so check the sort key's final component through the tally of a zero-weight scheme
    v = vote([tr(9, 0), tr(2, 1)], weight=lambda t: 0.0)
    assert v.answer == 9  # first reached beats smaller value
    assert [a for a, _, _ in v.tally] == [9, 2]


def test_tir_clean_weights_clean_printed_sample() -> None:
    w = make_weight("tir_clean")
    assert w(tir(12, "12")) == 2.0
    assert w(tir(12, "13")) == 1.0  # printed something else
    assert w(tir(12, "12", status="error")) == 1.0  # code failed
    assert w(tr(12)) == 1.0  # CoT
    assert make_weight("tir_clean:3")(tir(12, "12")) == 3.0
    assert w(tir(25, "1025")) == 2.0  # printed before the mod-1000 reduction


def test_tir_clean_changes_the_vote() -> None:
    traces = [tr(7, 0), tr(7, 1), tir(11, "11", index=2), tir(11, "11", index=3), tr(9, 4)]
    assert vote(traces).answer == 7
    assert vote(traces, make_weight("tir_clean")).answer == 11


def test_aimo2_down_weights_small_answers() -> None:
    w = make_weight("aimo2")
    assert w(tr(0)) == 0.5 and w(tr(9)) == 0.5 and w(tr(10)) == 1.0 and w(tr(-3)) == 0.5
    assert make_weight("aimo2:100:0.25")(tr(50)) == 0.25
    traces = [tr(1, 0), tr(1, 1), tr(1, 2), tr(336, 3), tr(336, 4)]
    assert vote(traces).answer == 1
    assert vote(traces, w).answer == 336


def test_product_scheme() -> None:
    w = make_weight("tir_clean*aimo2")
    assert w(tir(3, "3")) == 1.0
    assert w(tir(30, "30")) == 2.0


@pytest.mark.parametrize("spec", ["nope", "tir_clean:x", "aimo2:1:2:3", "uniform:1", "fitted"])
def test_bad_weight_specs(spec: str) -> None:
    with pytest.raises(UserError):
        make_weight(spec)


def test_negative_weight_is_a_bug() -> None:
    with pytest.raises(ValueError):
        vote([tr(1)], weight=lambda t: -1.0)
