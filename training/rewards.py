"""GRPO rewards in TRL's signature: `f(completions, **kwargs) -> list[float]`, one per completion.

The Fast-Math-R1 set: accuracy, format, cosine (length-scaled correctness) and the Kimi 1.5
group length reward, plus an n-gram repetition penalty. Correctness always goes through
`grade` (agent.answers' extract_answer + is_correct), the one function the agent's vote, the
eval store and the gen-tir filters grade with. TRL passes dataset columns as keyword lists:
`answer` (reference, required for the correctness-based rewards) and optionally `modulus`; the
TIR rollout adds `steps` (the Trace's steps, for code-output answers) and `model_tokens`
(generated tokens without tool output).

The semantics that change what a model learns are explicit arguments (recipe fields):
  length unit   "tokens" (`model_tokens`, else `len(completion_ids)`, else words) or "chars"
                (characters of the model's own text, as Fast-Math-R1's `len(content)`);
  length group  the Kimi reward's min/max over one prompt's completions ("prompt", as the
                Kimi 1.5 paper defines it) or over the whole call ("call", as Fast-Math-R1's
                `len_reward` computes it: every completion TRL scores at once on one process);
  cosine ends   (value at length 0, value at the far end) for correct and for wrong answers;
                the far end `max_len` is in the length unit, lengths beyond it are clipped;
  format        a box before the end-of-thinking tag, or any regex (`pattern`, re.match with
                DOTALL), e.g. Fast-Math-R1's `^.*?oxed{(.*?)}.*?</think>.*?$`.

Not covered: reward models, LLM judges, or non-integer symbolic equivalence (see agent.answers).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from agent.answers import extract_boxed, grade
from agent.types import Step

RewardFn = Callable[..., list[float]]
LENGTH_UNITS = ("tokens", "chars")
LENGTH_GROUPS = ("prompt", "call")


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
        out.append(grade(completion_text(comp), None if ref is None else str(ref), _steps(st), mod))
    return out


def lengths(completions: Sequence[Any], unit: str = "tokens", **kwargs: Any) -> list[int]:
    """Generated length per completion in `unit` (tool output excluded when known)."""
    n = len(completions)
    if unit == "chars":
        steps = _column(kwargs, "steps", n)
        return [len("".join(s.text for s in _steps(st) if s.kind != "output")) if st else len(completion_text(c))
                for c, st in zip(completions, steps, strict=True)]
    if unit != "tokens":
        raise ValueError(f"length unit must be one of {LENGTH_UNITS}, got {unit!r}")
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


def format_reward(
    completions: Sequence[Any], think_end: str = "</think>", pattern: str = "", **kwargs: Any
) -> list[float]:
    """1.0 when a non-empty `\\boxed{}` answer appears before `think_end` (Fast-Math's early
    answer), else 0.0. With `think_end=""` a boxed answer anywhere counts. With a `pattern`,
    1.0 exactly when `re.match(pattern, text, re.DOTALL)` matches (and nothing else counts)."""
    if pattern:
        rx = re.compile(pattern, re.DOTALL)
        return [1.0 if rx.match(completion_text(c)) else 0.0 for c in completions]
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
    wrong_range: Sequence[float] = (-1.0, -0.1),
    unit: str = "tokens",
    **kwargs: Any,
) -> list[float]:
    """Length-scaled correctness: correct answers go from 1.0 (short) down to 0.1 at `max_len`,
    wrong ones from -1.0 (a short wrong guess) up to -0.1 at `max_len` (a wrong answer should at
    least think long), as Fast-Math-R1 and open-r1 have it. Each range is (value at length 0,
    value at `max_len`); lengths are in `unit` and clipped at `max_len`."""
    ok = correctness(completions, **kwargs)
    lens = lengths(completions, unit, **kwargs)
    out = []
    for good, n in zip(ok, lens, strict=True):
        lo_hi = correct_range if good else wrong_range
        out.append(cosine_value(n, max_len, float(lo_hi[0]), float(lo_hi[1])))
    return out


def _groups(completions: Sequence[Any], kwargs: dict[str, Any], by: str = "prompt") -> list[list[int]]:
    """Indices of completions that answer the same prompt (TRL puts a group's rows together),
    or all of them as one group when `by` is "call"."""
    if by == "call":
        return [list(range(len(completions)))] if len(completions) else []
    if by != "prompt":
        raise ValueError(f"length group must be one of {LENGTH_GROUPS}, got {by!r}")
    prompts = kwargs.get("prompts")
    keys = [repr(p) for p in prompts] if prompts is not None else ["all"] * len(completions)
    order: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        order.setdefault(k, []).append(i)
    return list(order.values())


def length_reward(
    completions: Sequence[Any], unit: str = "tokens", group: str = "prompt", **kwargs: Any
) -> list[float]:
    """Kimi 1.5 length reward over each group (`group`: "prompt" or the whole "call"):
    lambda = 0.5 - (len - min) / (max - min); correct answers get lambda, wrong ones
    min(0, lambda). All lengths in a group equal: 0 for all."""
    ok = correctness(completions, **kwargs)
    lens = lengths(completions, unit, **kwargs)
    out = [0.0] * len(completions)
    for idx in _groups(completions, kwargs, group):
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
    unit = recipe.length_unit
    if name == "length":
        grp = recipe.length_group
        return _named(lambda completions, **kw: length_reward(completions, unit, grp, **kw), "length")
    if name == "format":
        end, pat = recipe.format_think_end, recipe.format_pattern
        return _named(lambda completions, **kw: format_reward(completions, end, pat, **kw), "format")
    if name == "cosine":
        ml, cr, wr = recipe.effective_cosine_max_len(), recipe.cosine_correct, recipe.cosine_wrong
        return _named(lambda completions, **kw: cosine_reward(completions, ml, cr, wr, unit, **kw), "cosine")
    if name == "repetition":
        ng, pen = recipe.repetition_ngram, recipe.repetition_penalty
        return _named(lambda completions, **kw: repetition_reward(completions, ng, pen, **kw), "repetition")
    from agent.errors import UserError

    raise UserError(f"unknown reward {name!r} in field 'rewards'; choose from {', '.join(REWARDS)}")


def make_rewards(recipe: Any) -> list[RewardFn]:
    """The recipe's reward functions, in order."""
    return [make_reward(name, recipe) for name in recipe.rewards]
