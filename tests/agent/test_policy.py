"""Stop policies against hand-built sample streams with known correct decisions."""

from __future__ import annotations

import pytest

from agent.errors import UserError
from agent.policy import Agree, Consistency, Fixed, Posterior, leader_holds_probability, make_policy
from agent.types import Answer, Trace


def stream(*values: int | None) -> list[Trace]:
    out = []
    for i, v in enumerate(values):
        ans = None if v is None else Answer(str(v), v, "boxed")
        out.append(Trace("p", i, i, "cot", (), ans, "answer" if ans else "length", 100, 0))
    return out


def first_stop(policy, values: list[int | None], total: int = 8) -> int | None:
    """How many finished samples it took the policy to stop (None: never)."""
    s = stream(*values)
    for k in range(1, len(s) + 1):
        if policy.decide(s[:k], total, 0.0, None):
            return k
    return None


def test_fixed_never_stops_early() -> None:
    assert first_stop(Fixed(), [5] * 8) is None


def test_fixed_stops_on_time() -> None:
    assert Fixed().decide(stream(5), 8, 10.0, 10.0) == "time"
    assert Fixed().decide(stream(5), 8, 9.9, 10.0) is None


@pytest.mark.parametrize(
    "k,n,values,expected",
    [
        (4, 5, [7, 7, 7, 7], 4),
        (4, 5, [7, 3, 7, 7, 7], 5),
        (4, 5, [7, 3, 7, 2, 7, 7, 7, 7], None),  # only 3 of the first 5 agree: runs to the end
        (3, 3, [1, 1, 1], 3),
        (3, 3, [1, 2, 1, 1], None),
        (5, 7, [9, None, 9, 9, 4, 9, 9], 7),
        (4, 5, [None, None, None, None, None, 7, 7, 7], None),
    ],
)
def test_consistency(k: int, n: int, values: list[int | None], expected: int | None) -> None:
    assert first_stop(Consistency(k, n), values) == expected


@pytest.mark.parametrize(
    "k,values,expected",
    [
        (3, [1, 2, 1, 3, 1], 5),
        (3, [1, 1, 1], 3),
        (3, [1, 2, 3, 4, 5, 6, 7, 8], None),
        (3, [None, 4, None, 4, 9, 4], 6),
        (1, [None, 8], 2),
    ],
)
def test_agree(k: int, values: list[int | None], expected: int | None) -> None:
    assert first_stop(Agree(k), values) == expected


def test_agree_reason_names_answer() -> None:
    assert Agree(2).decide(stream(5, 5), 8, 0.0, None) == "2 agree on 5"


def test_posterior_probabilities_are_sane() -> None:
    p_unanimous = leader_holds_probability((4,), 0, 4)
    p_split = leader_holds_probability((2, 2), 0, 4)
    p_single = leader_holds_probability((1,), 0, 7)
    assert p_unanimous > 0.98
    assert p_split < 0.6
    assert p_single < p_unanimous
    # already decided: 5 of 8 agree, 3 left cannot overturn
    assert leader_holds_probability((5, 0), 0, 3) == 1.0 or leader_holds_probability((5,), 0, 3) == 1.0
    # nothing remains: the leader is the winner
    assert leader_holds_probability((2, 1), 0, 0) == 1.0


def test_posterior_is_deterministic() -> None:
    leader_holds_probability.cache_clear()
    a = leader_holds_probability((2, 1), 1, 4)
    leader_holds_probability.cache_clear()
    assert leader_holds_probability((2, 1), 1, 4) == a


def test_posterior_stops_on_agreement_not_on_split() -> None:
    pol = Posterior(0.95)
    assert first_stop(pol, [3, 3, 3, 3, 3, 3, 3, 3]) in (2, 3)
    assert first_stop(pol, [1, 2, 1, 2, 3, 4, 5, 6]) is None
    # a cautious prior (theta = 3) waits longer than the default
    assert first_stop(Posterior(0.95, theta=3.0), [3] * 8) > first_stop(pol, [3] * 8)


def test_posterior_error_target_is_calibrated_on_its_own_model() -> None:
    """Stopping at P >= 0.9 is wrong (leader not the final winner) in at most ~10% of streams
    drawn from a fixed answer distribution (a model check, not a timing assert)."""
    import numpy as np

    rng = np.random.default_rng(1)
    pol = Posterior(0.9)
    wrong = stops = 0
    for _ in range(300):
        values = [int(v) for v in rng.choice([1, 2, 3], size=8, p=[0.5, 0.3, 0.2])]
        s = stream(*values)
        for k in range(1, 8):
            if pol.decide(s[:k], 8, 0.0, None):
                stops += 1
                from agent.vote import vote

                wrong += vote(s[:k]).answer != vote(s).answer
                break
    assert stops > 50
    assert wrong / stops <= 0.15


@pytest.mark.parametrize(
    "spec,name",
    [
        ("fixed", "fixed"),
        ("consistency:4/5", "consistency:4/5"),
        ("consistency", "consistency:4/5"),
        ("agree:3", "agree:3"),
        ("agree", "agree:3"),
        ("posterior:0.9", "posterior:0.9"),
        ("sprt:0.95", "posterior:0.95"),
        ("posterior:0.95:2", "posterior:0.95:2"),
    ],
)
def test_make_policy(spec: str, name: str) -> None:
    assert make_policy(spec).name == name


@pytest.mark.parametrize(
    "spec",
    ["nope", "fixed:3", "consistency:5/4", "consistency:4", "consistency:a/b", "agree:0", "agree:x",
     "posterior:1.5", "posterior:0.2", "posterior:x", "posterior:0.9:0", "posterior:0.9:1:2"],
)
def test_bad_policy_specs(spec: str) -> None:
    with pytest.raises(UserError):
        make_policy(spec)
