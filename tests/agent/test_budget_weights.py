"""Time schedulers (flat, banking with a difficulty estimate) and fitted vote weights."""

from __future__ import annotations

import json

import pytest

from agent.budget import BankingScheduler, FlatScheduler, difficulty, make_scheduler
from agent.errors import UserError
from agent.types import Answer, Step, Trace
from agent.vote import make_weight, vote
from agent.weights import FEATURES, features, fit_weights, load_weights, save_weights, split_ids


def tr(value: int | None, index: int = 0, mode: str = "cot", clean: bool = False, tokens: int = 1000) -> Trace:
    ans = None if value is None else Answer(str(value), value, "boxed")
    steps: tuple[Step, ...] = ()
    if clean:
        steps = (Step("code", "```python\nprint(x)\n```"), Step("output", f"```output\n{value}\n```", status="ok"))
    return Trace("p", index, index, mode, steps, ans, "answer" if ans else "length", tokens, len(steps) // 2)  # type: ignore[arg-type]


def test_difficulty_signals() -> None:
    assert difficulty([tr(5), tr(5), tr(5)], 8) == 0.0
    assert difficulty([tr(1), tr(2), tr(3), tr(4)], 8) == pytest.approx(0.75)
    assert difficulty([tr(None), tr(None)], 8) == 1.0
    assert difficulty([tr(5), tr(None)], 8) == pytest.approx(0.25)
    assert difficulty([], 8) == 1.0  # nothing back by the deadline


def test_flat_never_banks() -> None:
    s = FlatScheduler(3600.0, 10)
    assert s.budget_for(0, 10, 3600.0) == 360.0
    s.record(10.0)
    assert s.budget_for(1, 9, 3590.0) == 360.0  # the 350 s saved are lost
    assert s.revise(360.0, [tr(1), tr(2)], 8, 100.0) == 360.0
    assert s.budget_for(9, 1, 100.0) == 100.0  # never more than what is left


def test_banking_passes_saved_time_on() -> None:
    s = BankingScheduler()
    assert s.budget_for(0, 10, 3600.0) == 360.0
    assert s.budget_for(1, 9, 3590.0) == pytest.approx(3590.0 / 9)


def test_banking_stretches_hard_problems_within_cap() -> None:
    s = BankingScheduler(stretch=2.0, reserve=0.5)
    b = s.budget_for(0, 10, 3600.0)
    assert s.revise(b, [tr(5), tr(5), tr(5)], 8, 50.0) == b  # easy: unchanged
    hard = s.revise(b, [tr(1), tr(2), tr(3), tr(4)], 8, 200.0)
    assert b < hard <= 2 * b
    assert s.revise(hard, [tr(5)] * 3, 8, 250.0) == hard  # never shrinks
    # the cap keeps half a share for each remaining problem
    s2 = BankingScheduler(stretch=10.0, reserve=0.5)
    b2 = s2.budget_for(0, 3, 300.0)
    assert s2.revise(b2, [], 8, b2) == pytest.approx(300.0 - 0.5 * 100.0 * 2)


@pytest.mark.parametrize("spec", ["nope", "flat:2", "bank:0.5", "bank:x", "bank:2:-1", "bank:1:1:1"])
def test_bad_scheduler_specs(spec: str) -> None:
    with pytest.raises(UserError):
        make_scheduler(spec, 100.0, 5)


def test_make_scheduler() -> None:
    assert make_scheduler("flat", 100.0, 5).name == "flat"
    s = make_scheduler("bank:3:0.25", 100.0, 5)
    assert isinstance(s, BankingScheduler) and s.stretch == 3.0 and s.reserve == 0.25


def test_features_vector() -> None:
    f = features(tr(12, mode="tir", clean=True))
    assert len(f) == len(FEATURES)
    named = dict(zip(FEATURES, f, strict=True))
    assert named["tir"] == 1.0 and named["code_clean"] == 1.0 and named["printed_matches"] == 1.0
    assert named["small_answer"] == 0.0
    assert dict(zip(FEATURES, features(tr(3)), strict=True))["small_answer"] == 1.0


def _labelled() -> list[tuple[Trace, bool]]:
    # synthetic truth: clean TIR samples are right 90% of the time, plain CoT 40%
    out = []
    for i in range(200):
        if i % 2:
            out.append((tr(100, i, "tir", clean=True), i % 10 != 1))
        else:
            out.append((tr(200, i, "cot"), i % 5 < 2))
    return out


def test_fit_learns_the_signal_and_roundtrips(tmp_path) -> None:
    w = fit_weights(_labelled())
    clean, cot = w(tr(100, mode="tir", clean=True)), w(tr(200))
    assert clean > 0.75 and 0.3 < cot < 0.5  # L2 pulls a little towards 0.5
    path = tmp_path / "w.json"
    save_weights(w, path)
    assert json.loads(path.read_text())["kind"] == "tirmath-vote-weights"
    again = make_weight(f"fitted:{path}")
    assert again(tr(100, mode="tir", clean=True)) == pytest.approx(clean)
    # 2 clean TIR votes beat 3 CoT votes under fitted weights, not under plain majority
    traces = [tr(7, 0), tr(7, 1), tr(7, 2), tr(9, 3, "tir", True), tr(9, 4, "tir", True)]
    assert vote(traces).answer == 7
    assert vote(traces, again).answer == 9


def test_load_weights_errors(tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UserError, match="line 1"):
        load_weights(bad)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"kind": "something"}))
    with pytest.raises(UserError):
        load_weights(other)
    with pytest.raises(UserError):
        load_weights(tmp_path / "missing.json")
    with pytest.raises(UserError):
        fit_weights([(tr(None), True)])


def test_split_is_disjoint_and_stable() -> None:
    ids = [f"2025-I-{i}" for i in range(1, 16)]
    a, b = split_ids(ids)
    assert a.isdisjoint(b) and a | b == set(ids) and a and b
    assert split_ids(ids) == (a, b)
