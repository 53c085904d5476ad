"""GRPO rewards in TRL's signature: `f(completions, **kwargs) -> list[float]`, one per completion.

The Fast-Math-R1 set: accuracy, format, cosine (length-scaled correctness) and the Kimi 1.5
group length reward, plus an n-gram repetition penalty. Correctness always goes through
`agent.answers` (extract_answer / is_correct), the same code the agent votes with and the evals
grade with. TRL passes dataset columns as keyword lists: `answer` (reference, required for the
correctness-based rewards) and optionally `modulus`; the TIR rollout adds `steps` (the Trace's
steps, for code-output answers) and `model_tokens` (generated tokens without tool output).
Lengths are in tokens: `model_tokens` if given, else `len(completion_ids)`, else words.

Not covered: reward models, LLM judges, or non-integer symbolic equivalence (see agent.answers).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from agent.answers import extract_answer, extract_boxed, is_correct
from agent.types import Step

RewardFn = Callable[..., list[float]]


def completion_text(completion: Any) -> str:
    """TRL passes a string (standard format) or a list of messages (conversational): the text."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(str(m.get("content") or "") for m in completion if isinstance(m, dict))
    return str(completion)


def _column(kwargs: dict[str, Any], name: str, n: int) -> list[Any]:
    values = kwargs.get(name)
    if values is None:
        return [None] * n
    return list(values)


def _steps(value: Any) -> tuple[Step, ...]:
    if not value:
        return ()
    return tuple(s if isinstance(s, Step) else Step.from_dict(s) for s in value)


def correctness(completions: Sequence[Any], **kwargs: Any) -> list[bool]:
    """Whether each completion's extracted answer matches the `answer` column."""
    n = len(completions)
    answers, moduli, steps = (_column(kwargs, k, n) for k in ("answer", "modulus", "steps"))
    if all(a is None for a in answers):
        raise ValueError("correctness rewards need an `answer` column in the training data")
    out = []
    for comp, ref, mod, st in zip(completions, answers, moduli, steps, strict=True):
        got = extract_answer(completion_text(comp), _steps(st), mod)
        out.append(is_correct(got, None if ref is None else str(ref), mod))
    return out


def lengths(completions: Sequence[Any], **kwargs: Any) -> list[int]:
    """Generated length per completion in tokens (tool output excluded when known)."""
    n = len(completions)
    model_tokens = kwargs.get("model_tokens")
    if model_tokens is not None:
        return [int(x) for x in model_tokens]
    ids = kwargs.get("completion_ids")
    if ids is not None:
        return [len(x) for x in ids]
    return [len(completion_text(c).split()) for c in completions[:n]]


def accuracy_reward(completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """1.0 when the extracted answer equals the reference answer, else 0.0."""
    return [1.0 if ok else 0.0 for ok in correctness(completions, **kwargs)]


def format_reward(completions: Sequence[Any], think_end: str = "</think>", **kwargs: Any) -> list[float]:
    """1.0 when a non-empty `\\boxed{}` answer appears before `think_end` (Fast-Math's early
    answer), else 0.0. With `think_end=""` a boxed answer anywhere counts."""
    out = []
    for comp in completions:
        text = completion_text(comp)
        if think_end:
            head, sep, _ = text.partition(think_end)
            if not sep:
                out.append(0.0)
                continue
            text = head
        out.append(1.0 if extract_boxed(text) else 0.0)
    return out


def cosine_value(length: int, max_len: int, at_zero: float, at_max: float) -> float:
    """Cosine interpolation from `at_zero` (length 0) to `at_max` (length >= max_len)."""
    progress = min(max(length, 0) / max(max_len, 1), 1.0)
    return at_max + 0.5 * (at_zero - at_max) * (1.0 + math.cos(math.pi * progress))


def cosine_reward(
    completions: Sequence[Any],
    max_len: int = 1000,
    correct_range: Sequence[float] = (1.0, 0.1),
    wrong_range: Sequence[float] = (-0.1, -1.0),
    **kwargs: Any,
) -> list[float]:
    """Length-scaled correctness: correct answers go from 1.0 (short) down to 0.1 at `max_len`,
    wrong ones from -0.1 down to -1.0 (the ranges are configurable). open-r1's cosine reward
    orders the wrong range the other way (long wrong answers penalised less); pass
    `wrong_range=(-1.0, -0.1)` for that behaviour."""
    ok = correctness(completions, **kwargs)
    lens = lengths(completions, **kwargs)
    out = []
    for good, n in zip(ok, lens, strict=True):
        lo_hi = correct_range if good else wrong_range
        out.append(cosine_value(n, max_len, float(lo_hi[0]), float(lo_hi[1])))
    return out


def _groups(completions: Sequence[Any], kwargs: dict[str, Any]) -> list[list[int]]:
    """Indices of completions that answer the same prompt (TRL puts a group's rows together)."""
    prompts = kwargs.get("prompts")
    keys = [repr(p) for p in prompts] if prompts is not None else ["all"] * len(completions)
    order: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        order.setdefault(k, []).append(i)
    return list(order.values())


def length_reward(completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """Kimi 1.5 length reward, per prompt group: lambda = 0.5 - (len - min) / (max - min);
    correct answers get lambda, wrong ones min(0, lambda). All lengths equal: 0 for all."""
    ok = correctness(completions, **kwargs)
    lens = lengths(completions, **kwargs)
    out = [0.0] * len(completions)
    for idx in _groups(completions, kwargs):
        lo, hi = min(lens[i] for i in idx), max(lens[i] for i in idx)
        if hi == lo:
            continue
        for i in idx:
            lam = 0.5 - (lens[i] - lo) / (hi - lo)
            out[i] = lam if ok[i] else min(0.0, lam)
    return out


def repetition_reward(
    completions: Sequence[Any], ngram: int = 3, penalty: float = -1.0, **kwargs: Any
) -> list[float]:
    """Penalty for repeated word n-grams: penalty * (1 - distinct / total); 0 below n words."""
    out = []
    for comp in completions:
        words = completion_text(comp).lower().split()
        grams = [tuple(words[i : i + ngram]) for i in range(len(words) - ngram + 1)]
        if not grams:
            out.append(0.0)
            continue
        out.append(penalty * (1.0 - len(set(grams)) / len(grams)))
    return out


REWARDS: dict[str, str] = {
    "accuracy": "1 if the answer is correct",
    "format": "1 if a boxed answer comes before the end-of-thinking tag",
    "cosine": "correctness scaled by length with a cosine schedule",
    "length": "Kimi 1.5 group length reward",
    "repetition": "penalty for repeated n-grams",
}


def _named(fn: Callable[..., list[float]], name: str) -> RewardFn:
    fn.__name__ = name  # TRL logs each reward under its function name
    fn.__qualname__ = name
    return fn


def make_reward(name: str, recipe: Any) -> RewardFn:
    """One reward function (TRL signature) configured from the recipe's fields."""
    if name == "accuracy":
        return accuracy_reward
    if name == "length":
        return length_reward
    if name == "format":
        end = recipe.format_think_end
        return _named(lambda completions, **kw: format_reward(completions, think_end=end, **kw), "format")
    if name == "cosine":
        ml, cr, wr = recipe.effective_cosine_max_len(), recipe.cosine_correct, recipe.cosine_wrong
        return _named(lambda completions, **kw: cosine_reward(completions, ml, cr, wr, **kw), "cosine")
    if name == "repetition":
        ng, pen = recipe.repetition_ngram, recipe.repetition_penalty
        return _named(lambda completions, **kw: repetition_reward(completions, ng, pen, **kw), "repetition")
    from agent.errors import UserError

    raise UserError(f"unknown reward {name!r} in field 'rewards'; choose from {', '.join(REWARDS)}")


def make_rewards(recipe: Any) -> list[RewardFn]:
    """The recipe's reward functions, in order."""
    return [make_reward(name, recipe) for name in recipe.rewards]
