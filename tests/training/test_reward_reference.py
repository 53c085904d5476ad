"""Fast-Math-R1 stage-2 rewards against the reference's own formulas (issue 15).

The reference is analokmaus/kaggle-aimo2-fast-math-r1: finetune/grpo_rewards.py as
experiments/train_second_stage.py configures it: `format_reward2`, `get_cosine_scaled_reward(
max_value_correct=1.0, min_value_correct=0.1, max_value_wrong=-0.1, min_value_wrong=-1.0,
max_len=30000, clip_len=True)` and `len_reward`, all on `len(content)` characters, each called once
on one process's 2 prompts x 8 completions. Its formulas are written out below (not imported, and
not tirmath's code); each row's correctness is labelled by hand, and the label is checked against
math-verify with the reference's own `check_answer` settings. tirmath's `fast_math_grpo` recipe
must give the reference's reward on every row, so a sign or an order cannot flip again unseen.
"""

from __future__ import annotations

import math
import re

import pytest
from latex2sympy2_extended import NormalizationConfig
from math_verify import LatexExtractionConfig, parse, verify

from training.recipe import load_recipe
from training.rewards import make_rewards

# --- the reference's formulas, transcribed -------------------------------------------------------
REF_FORMAT2 = re.compile(r"^.*?oxed{(.*?)}.*?</think>.*?$", re.DOTALL)  # format_reward2
REF_MAX_LEN = 30000


def ref_format(text: str) -> float:
    return 1.0 if REF_FORMAT2.match(text) else 0.0


def ref_cosine(text: str, correct: bool) -> float:
    """cosine_scaled_reward: min + 0.5 (max - min)(1 + cos(pi progress)); for a wrong answer
    min/max are swapped, so min_value = max_value_wrong = -0.1 and max_value = min_value_wrong = -1."""
    progress = min(1.0, len(text) / REF_MAX_LEN)  # clip_len=True
    lo, hi = (0.1, 1.0) if correct else (-0.1, -1.0)
    return lo + 0.5 * (hi - lo) * (1.0 + math.cos(progress * math.pi))


def ref_length(texts: list[str], correct: list[bool]) -> list[float]:
    """len_reward over the whole call: lambda = 0.5 - (len - min) / (max - min)."""
    lens = [len(t) for t in texts]
    lo, hi = min(lens), max(lens)
    if lo == hi:
        return [0.0] * len(texts)
    lams = [0.5 - (n - lo) / (hi - lo) for n in lens]
    return [lam if ok else min(0.0, lam) for lam, ok in zip(lams, correct, strict=True)]


def ref_check_answer(completion: str, answer: str) -> bool:
    """check_answer's math-verify settings (boxed first, first match, no unanchored fallback)."""
    gold = parse("\\boxed{" + answer + "}")
    norm = NormalizationConfig(nits=False, malformed_operators=False, basic_latex=True, equations=True,
                               boxed="all", units=True)
    cfg = LatexExtractionConfig(normalization_config=norm, boxed_match_priority=0, try_extract_without_anchor=False)
    return bool(verify(parse(completion, extraction_config=[cfg], extraction_mode="first_match"), gold))


# --- the table: one call, 2 prompts x 8 completions ----------------------------------------------
def think(chars: int) -> str:
    """Reasoning filler of exactly `chars` characters (no digits, no box, no answer phrase)."""
    unit = "Let me look at the cases once more and check each step carefully. "
    return ("<think>\n" + unit * (chars // len(unit) + 1))[:chars]


A, B = "42", "1000"
# (prompt answer, completion, correct by hand, what the row exercises)
ROWS: list[tuple[str, str, bool, str]] = [
    (A, think(300) + "\\boxed{42}</think>\n\nSo it is $\\boxed{42}$.", True, "correct, short, box before </think>"),
    (A, think(20000) + "\\boxed{42}</think>\n\n$\\boxed{42}$", True, "correct, long"),
    (A, "\\boxed{7}</think>\\boxed{7}", False, "a quick wrong guess"),
    (A, think(40000) + "\\boxed{41}</think>\\boxed{41}", False, "wrong, past the far end (clipped)"),
    (A, think(45000), False, "cut off: no </think>, no box"),
    (A, think(3000) + "so \\boxed{42 }</think> done.", True, "box with a space before </think>"),
    (A, think(2000) + "\\boxed{42 </think> done.", False, "unclosed box"),
    (A, think(5000) + "\\boxed{}</think> Thus $\\boxed{42}$.", True, "empty box before </think>, answer after"),
    (B, think(100) + "\\boxed{1,000}</think> $\\boxed{1,000}$", True, "thousands separator"),
    (B, think(8000) + "\\boxed{1000\\text{ apples}}</think>", True, "text wrapper"),
    (B, think(6000) + "\\boxed{1, 000}</think>", False, "a list, not a thousands separator"),
    (B, think(12000) + "</think>\n\nThe count is $\\boxed{1000}$.", True, "box only after </think>"),
    (B, think(9000) + "\\boxed{999}</think> On reflection $\\boxed{1000}$.", True, "wrong box, then the right one"),
    (B, think(30000 - 12) + "\\boxed{1000}", True, "correct at exactly the far end, no </think>"),
    (B, think(15000 - 30) + "\\boxed{998}</think>\\boxed{998}", False, "wrong at half the far end"),
    (B, think(10000) + "\\boxed{10", False, "cut off inside the box"),
]


def _call() -> dict[str, list]:
    """TRL's keyword arguments for one reward call on this process."""
    prompts = [[{"role": "user", "content": f"problem {ans}"}] for ans, _, _, _ in ROWS]
    return {"prompts": prompts, "completion_ids": [[1] * (len(c) // 4) for _, c, _, _ in ROWS],
            "answer": [ans for ans, _, _, _ in ROWS]}


@pytest.mark.parametrize("row", range(len(ROWS)), ids=[r[3] for r in ROWS])
def test_hand_labels_match_the_reference_grader(row: int) -> None:
    ans, completion, correct, _ = ROWS[row]
    assert ref_check_answer(completion, ans) is correct


def test_stage2_recipe_gives_the_reference_reward_on_every_row() -> None:
    recipe = load_recipe("fast_math_grpo")
    fmt, cos, length = make_rewards(recipe)
    texts = [c for _, c, _, _ in ROWS]
    correct = [ok for _, _, ok, _ in ROWS]
    kw = _call()
    got = {"format": fmt(texts, **kw), "cosine": cos(texts, **kw), "length": length(texts, **kw)}
    want = {"format": [ref_format(t) for t in texts], "cosine": [ref_cosine(t, ok) for t, ok in zip(texts, correct, strict=True)],
            "length": ref_length(texts, correct)}
    for name in want:
        for i, (g, w) in enumerate(zip(got[name], want[name], strict=True)):
            assert g == pytest.approx(w, abs=1e-9), (name, ROWS[i][3], g, w)
    assert recipe.reward_weights == [1.0, 1.0, 1.0]


def test_hand_computed_values() -> None:
    """A few rows worked by hand from the formulas, so the transcription above is checked too."""
    recipe = load_recipe("fast_math_grpo")
    fmt, cos, length = make_rewards(recipe)
    texts = [c for _, c, _, _ in ROWS]
    kw = _call()
    f, c, n = fmt(texts, **kw), cos(texts, **kw), length(texts, **kw)
    by = {r[3]: i for i, r in enumerate(ROWS)}
    guess = by["a quick wrong guess"]  # 25 characters: the shortest of the call
    assert f[guess] == 1.0 and c[guess] == pytest.approx(-1.0, abs=1e-3) and n[guess] == 0.0
    assert f[guess] + c[guess] + n[guess] == pytest.approx(0.0, abs=1e-3)  # tirmath used to pay +0.90 here
    assert c[by["wrong, past the far end (clipped)"]] == pytest.approx(-0.1)
    assert c[by["cut off: no </think>, no box"]] == pytest.approx(-0.1)
    assert c[by["correct at exactly the far end, no </think>"]] == pytest.approx(0.1)
    assert c[by["wrong at half the far end"]] == pytest.approx(-0.55)  # -0.1 + 0.5 * -0.9 * (1 + cos(pi/2))
    # the longest completion (45 000 characters, wrong) has lambda = 0.5 - 1 = -0.5
    assert n[by["cut off: no </think>, no box"]] == pytest.approx(-0.5)
    assert f[by["box with a space before </think>"]] == 1.0
    assert f[by["empty box before </think>, answer after"]] == 1.0
    assert f[by["unclosed box"]] == 0.0


def test_per_prompt_tokens_is_still_available() -> None:
    """The Kimi paper's grouping (per prompt, in tokens) is one `--set` away."""
    recipe = load_recipe("fast_math_grpo", {"length_group": "prompt", "length_unit": "tokens",
                                            "cosine_max_len": 10000})
    _, cos, length = make_rewards(recipe)
    texts = [c for _, c, _, _ in ROWS]
    kw = _call()
    n = length(texts, **kw)
    per_a = ref_length(texts[:8], [ok for _, _, ok, _ in ROWS[:8]])  # same formula, within prompt A only
    # lengths in tokens are len(completion_ids) = chars // 4, so lambdas match up to that rounding
    assert n[:8] == pytest.approx(per_a, abs=1e-3)
    assert cos(texts, **kw)[2] == pytest.approx(-1.0, abs=1e-3)


def test_the_one_known_difference_bare_box() -> None:
    """`\\boxed 42</think>` (no braces): the reference's check_answer settings read no answer
    (no `\\boxed{`, no unanchored fallback), tirmath's one grader reads 42 (as math-verify's
    defaults do). The format reward agrees (0: the reference's pattern needs `oxed{`); the
    correctness-based rewards differ on purpose, and training/recipes/README.md says so."""
    from agent.answers import grade

    text = think(3000) + "so \\boxed 42</think> done."
    assert not ref_check_answer(text, "42") and grade(text, "42")
    fmt = make_rewards(load_recipe("fast_math_grpo"))[0]
    assert fmt([text]) == [ref_format(text)] == [0.0]
