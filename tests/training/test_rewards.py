"""Reward tables: each reward on hand-written completions, in TRL's calling convention."""

from __future__ import annotations

import math

import pytest

from agent.config import RolloutConfig
from agent.types import Step
from training.recipe import Recipe
from training.rewards import (
    accuracy_reward,
    completion_text,
    cosine_reward,
    cosine_value,
    format_reward,
    length_reward,
    make_rewards,
    repetition_reward,
)


@pytest.mark.parametrize(
    "completion, answer, expected",
    [
        ("so \\boxed{42}", "42", 1.0),
        ("so \\boxed{042}", "42", 1.0),
        ("so \\boxed{41}", "42", 0.0),
        ("no answer at all", "42", 0.0),
        ("\\boxed{1,000}", "1000", 1.0),
        ("\\boxed{\\frac{84}{2}}", "42", 1.0),
        ([{"role": "assistant", "content": "it is \\boxed{7}"}], "7", 1.0),  # conversational
    ],
)
def test_accuracy_table(completion, answer, expected):
    assert accuracy_reward([completion], answer=[answer]) == [expected]


def test_accuracy_uses_code_output_steps_when_given():
    steps = [Step("text", "Compute.\n"), Step("code", "```python\nprint(6*7)\n```\n"), Step("output", "```output\n42\n```\n")]
    text = "".join(s.text for s in steps)
    assert accuracy_reward([text], answer=["42"], steps=[steps]) == [1.0]
    # the number printed by code is not confused with a boxed answer in the prose
    assert accuracy_reward([text + "so \\boxed{41}"], answer=["42"], steps=[[*steps, Step("text", "so \\boxed{41}")]]) == [0.0]


def test_accuracy_needs_answer_column():
    with pytest.raises(ValueError, match="answer"):
        accuracy_reward(["\\boxed{1}"])


@pytest.mark.parametrize(
    "completion, think_end, expected",
    [
        ("<think>x = 5 so \\boxed{5}</think> The answer is 5.", "</think>", 1.0),
        ("<think>thinking</think> \\boxed{5}", "</think>", 0.0),  # boxed only after the tag
        ("<think>thinking, no tag closed \\boxed{5}", "</think>", 0.0),
        ("plain \\boxed{5}", "", 1.0),
        ("plain, no box", "", 0.0),
        ("empty \\boxed{}", "", 0.0),
    ],
)
def test_format_table(completion, think_end, expected):
    assert format_reward([completion], think_end=think_end) == [expected]


@pytest.mark.parametrize(
    "length, correct, expected",
    [
        (0, True, 1.0),
        (1000, True, 0.1),
        (5000, True, 0.1),  # clipped at max_len
        (500, True, 0.55),
        (0, False, -1.0),  # a quick wrong guess is the worst (Fast-Math-R1, open-r1)
        (1000, False, -0.1),
        (500, False, -0.55),
    ],
)
def test_cosine_table(length, correct, expected):
    comp = "\\boxed{3}" if correct else "\\boxed{4}"
    got = cosine_reward([comp], max_len=1000, answer=["3"], model_tokens=[length])
    assert got == [pytest.approx(expected)]


def test_cosine_is_monotone_in_length():
    vals = [cosine_value(n, 100, 1.0, 0.1) for n in range(0, 101, 10)]
    assert all(a > b for a, b in zip(vals, vals[1:], strict=False))
    assert math.isclose(vals[0], 1.0) and math.isclose(vals[-1], 0.1)


def test_length_reward_kimi_table():
    # one group (same prompt): lengths 10, 20, 30; min 10, max 30 -> lambda 0.5, 0.0, -0.5
    comps = ["\\boxed{1}", "\\boxed{2}", "\\boxed{1}"]
    got = length_reward(comps, answer=["1"] * 3, model_tokens=[10, 20, 30], prompts=["p"] * 3)
    assert got == [pytest.approx(0.5), pytest.approx(0.0), pytest.approx(-0.5)]
    # a wrong short answer gets min(0, lambda) = 0, not +0.5
    got = length_reward(["\\boxed{9}", "\\boxed{1}"], answer=["1"] * 2, model_tokens=[10, 30], prompts=["p"] * 2)
    assert got == [pytest.approx(0.0), pytest.approx(-0.5)]


def test_length_reward_groups_by_prompt_and_equal_lengths_give_zero():
    comps = ["\\boxed{1}"] * 4
    got = length_reward(comps, answer=["1"] * 4, model_tokens=[5, 15, 7, 7], prompts=["a", "a", "b", "b"])
    assert got == [pytest.approx(0.5), pytest.approx(-0.5), 0.0, 0.0]


def test_length_falls_back_to_completion_ids():
    got = length_reward(["\\boxed{1}"] * 2, answer=["1", "1"], completion_ids=[[1] * 4, [1] * 8], prompts=["p", "p"])
    assert got == [pytest.approx(0.5), pytest.approx(-0.5)]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a b c d e f", 0.0),
        ("a b c a b c a b c", -(1 - 3 / 7)),
        ("x y", 0.0),  # fewer than n words
    ],
)
def test_repetition_table(text, expected):
    assert repetition_reward([text], ngram=3, penalty=-1.0) == [pytest.approx(expected)]


def test_make_rewards_names_and_config():
    r = Recipe(kind="grpo", rewards=["accuracy", "format", "cosine", "length", "repetition"],
               format_think_end="", rollout=RolloutConfig(max_tokens=100))
    fns = make_rewards(r)
    assert [f.__name__ for f in fns] == ["accuracy_reward", "format", "cosine", "length", "repetition"]
    assert fns[1](["\\boxed{2}"]) == [1.0]
    assert fns[2](["\\boxed{2}"], answer=["2"], model_tokens=[100]) == [pytest.approx(0.1)]


def test_completion_text_forms():
    assert completion_text("abc") == "abc"
    assert completion_text([{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}]) == "ab"
