"""Grading regression table for agent/answers.py: real-looking model outputs -> answer.

Rows are (completion, expected value, expected source). Grow this table from real failures:
every grading bug becomes a row.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agent.answers import extract_answer, extract_boxed, is_correct, normalize_integer, normalize_latex
from agent.types import Answer, Step

DATA = Path(os.environ.get("TIRMATH_DATA_DIR") or Path(__file__).resolve().parents[2] / ".." / "shared" / "data")

R1_HEAD = "<think>\nOkay, so I need to find the number of ordered pairs. Let me think.\n"
TIR_CELL = '```python\nfrom sympy import *\nx = symbols("x")\nprint(solve(x**2 - 4, x))\n```\n'

# (completion, expected integer value or None, expected source or None (no answer))
EXTRACT_CASES: list[tuple[str, int | None, str | None]] = [
    # --- plain boxes
    (r"The answer is $\boxed{42}$.", 42, "boxed"),
    (r"\boxed{0}", 0, "boxed"),
    (r"So the final answer is \boxed{ 7 }", 7, "boxed"),
    (r"\fbox{123}", 123, "boxed"),
    (r"Thus \boxed 5 is the answer.", 5, "boxed"),
    # --- R1-distill style with <think>
    (R1_HEAD + r"Maybe it is \boxed{12}. Wait, no.</think>" + "\n\nThe answer is $\\boxed{24}$.", 24, "boxed"),
    (R1_HEAD + "Hmm, so 70 works.\n</think>\n\n**Final Answer**\n\\[\n\\boxed{70}\n\\]", 70, "boxed"),
    (R1_HEAD + "the count is 588.</think>\nTherefore $\\boxed{588}$", 588, "boxed"),
    # --- multiple boxes: the last one wins
    (r"First \boxed{3} then corrected: \boxed{5}", 5, "boxed"),
    (r"$\boxed{1}$ and $\boxed{2}$ and finally $\boxed{3}$.", 3, "boxed"),
    # --- thousands separators and spacing
    (r"\boxed{1,000}", 1000, "boxed"),
    (r"\boxed{1{,}000}", 1000, "boxed"),
    (r"\boxed{12\,345}", 12345, "boxed"),
    (r"\boxed{1 000 000}", 1000000, "boxed"),
    (r"\boxed{70000}", 70000, "boxed"),
    # --- text wrappers, multiple choice, units
    (r"\boxed{\text{(B) } 12}", 12, "boxed"),
    (r"\boxed{\textbf{(C)}\ 27}", 27, "boxed"),
    (r"\boxed{(D) 31}", 31, "boxed"),
    (r"\boxed{\text{(B)}}", None, "boxed"),
    (r"\boxed{12 \text{ cm}}", 12, "boxed"),
    (r"\boxed{36\text{ cm}^2}", 36, "boxed"),
    (r"\boxed{90^\circ}", 90, "boxed"),
    (r"\boxed{45^{\circ}}", 45, "boxed"),
    (r"\boxed{\$18}", 18, "boxed"),
    (r"\boxed{18 \text{ dollars}}", 18, "boxed"),
    (r"\boxed{25\%}", 25, "boxed"),
    (r"\boxed{15 \mathrm{~cm}}", 15, "boxed"),
    (r"\boxed{\text{42}}", 42, "boxed"),
    (r"\boxed{42.}", 42, "boxed"),
    # --- leading zeros, signs, floats
    (r"\boxed{025}", 25, "boxed"),
    (r"\boxed{007}", 7, "boxed"),
    (r"\boxed{-984}", -984, "boxed"),
    (r"\boxed{-50}", -50, "boxed"),
    (r"\boxed{+3}", 3, "boxed"),
    (r"\boxed{12.0}", 12, "boxed"),
    (r"\boxed{27.00}", 27, "boxed"),
    (r"\boxed{1.25}", None, "boxed"),
    (r"\boxed{0.15}", None, "boxed"),
    # --- fractions and expressions
    (r"\boxed{\dfrac{12}{3}}", 4, "boxed"),
    (r"\boxed{\frac{100}{4}}", 25, "boxed"),
    (r"\boxed{\frac{14}{3}}", None, "boxed"),
    (r"\boxed{\tfrac{3}{56}}", None, "boxed"),
    (r"\boxed{2^{10}}", 1024, "boxed"),
    (r"\boxed{2^{1009}}", 2**1009, "boxed"),
    (r"\boxed{3 \times 7}", 21, "boxed"),
    (r"\boxed{2 \cdot 3^2}", 18, "boxed"),
    (r"\boxed{3\sqrt{13}}", None, "boxed"),
    (r"\boxed{\left( 3, \frac{\pi}{2} \right)}", None, "boxed"),
    (r"\boxed{1,-2}", None, "boxed"),
    (r"\boxed{x = 5}", 5, "boxed"),
    (r"\boxed{n=25}", 25, "boxed"),
    (r"\boxed{52_8}", None, "boxed"),
    (r"\boxed{10^{100000}}", None, "boxed"),
    # --- nested braces
    (r"\boxed{\frac{\sqrt{3}}{2}}", None, "boxed"),
    (r"\boxed{{12}}", 12, "boxed"),
    # --- boxes inside code are code, not answers
    (TIR_CELL + "```output\n[-2, 2]\n```\nSo the sum is $\\boxed{0}$.", 0, "boxed"),
    ('```python\nans = 7\nprint(f"\\\\boxed{{{ans}}}")\n```\n```output\n\\boxed{7}\n```\n', 7, "code_output"),
    # --- TIR outputs without a box: the last code cell's printed number
    ("Let me compute.\n```python\nprint(6*7)\n```\n```output\n42\n```\n", 42, "code_output"),
    ("```python\nprint(1)\n```\n```output\n1\n```\n```python\nprint(2**10)\n```\n```output\nworking\n1024\n\n```", 1024, "code_output"),
    ("```python\nprint(3/2)\n```\n```output\n1.5\n```", None, "code_output"),
    ("```python\nprint(10.0)\n```\n```output\n10.0\n```", 10, "code_output"),
    ("```python\nprint(solve(x))\n```\n```output\n[1, 2]\n```", None, None),
    ("```python\n1/0\n```\n```output\nZeroDivisionError: division by zero\n```", None, None),
    # --- truncated outputs
    (R1_HEAD + "so the answer might be 12 but let me check the case where n", None, None),
    (R1_HEAD + r"I think \boxed{12} hmm. Final: \boxed{1", 12, "boxed"),
    (r"The answer is \boxed{", None, None),
    ("", None, None),
    ("No box here, the answer is 12.", 12, "final_answer"),
    # --- issue 15: bare box before </think>, other text wrappers, lists, final-answer sentences
    (r"\boxed 100</think>", 100, "boxed"),
    (R1_HEAD + "so it is \\boxed 100</think>\n\nThe count is 100.", 100, "boxed"),
    (r"The distance is $\boxed{125\textnormal{ miles}}.$", 125, "boxed"),
    (r"\boxed{12\textit{ cm}}", 12, "boxed"),
    (r"\boxed{\mathrm{42}}", 42, "boxed"),
    (r"\boxed{15\mbox{ cm}^2}", 15, "boxed"),
    (r"\boxed{7 \textsf{apples}}", 7, "boxed"),
    (r"\boxed{32, 349}", None, "boxed"),
    (r"\boxed{32,349}", 32349, "boxed"),
    (r"\boxed{32{,}349}", 32349, "boxed"),
    (r"\boxed{32,\!349}", 32349, "boxed"),
    (r"\boxed{12 \text{ and } 13}", None, "boxed"),
    (r"\boxed{f(x)=1}", 1, "boxed"),
    (r"\boxed{|AB| = 14}", 14, "boxed"),
    (r"So $0.04 \cdot 10,000 / 2 = \boxed{200}$, then $\boxed{255}$. Final Answer: The final answer is "
     r"$10,455$. I hope it is correct.", 10455, "final_answer"),
    (r"Final Answer: The final answer is $\boxed{8}$. I hope it is correct.", 8, "boxed"),
    ("The final answer is 42", 42, "final_answer"),
    ("Thus the final answer to the question is: $\\frac{84}{2}$.", 42, "final_answer"),
    ("Answer: 17", 17, "final_answer"),
    ("**Answer:** 1,024", 1024, "final_answer"),
    (r"The final answer is 5. Wait, recheck: \boxed{6}", 6, "boxed"),
    (r"\boxed{6} hmm, no: the final answer is 7.", 7, "final_answer"),
    ("Let me compute.\n```python\nprint(6*7)\n```\n```output\n42\n```\nAnswer: 42", 42, "final_answer"),
]


@pytest.mark.parametrize("completion,value,source", EXTRACT_CASES)
def test_extract_answer_table(completion: str, value: int | None, source: str | None) -> None:
    got = extract_answer(completion)
    if source is None:
        assert got is None
        return
    assert got is not None
    assert got.source == source
    assert got.value == value


def test_table_covers_every_answer_source() -> None:
    """The regression table grades through every extraction path the answer code has (a path with no
    row would go unchecked): each source that `extract_answer` can report is reached by some row."""
    from typing import get_args

    from agent.types import AnswerSource

    seen = set()
    for case in EXTRACT_CASES:
        ans = extract_answer(case[0], ())
        if ans is not None:
            seen.add(ans.source)
    assert {"boxed", "final_answer"} <= seen, seen
    assert seen <= set(get_args(AnswerSource))


@pytest.mark.parametrize(
    "raw,modulus,value",
    [
        ("1999", 1000, 999),
        ("2025", 1000, 25),
        ("-5", 1000, 995),
        ("1,000", 1000, 0),
        ("999", 1000, 999),
        ("2^{10}", 1000, 24),
        ("12345", None, 12345),
        ("12345", 100000, 12345),
    ],
)
def test_normalize_integer_modulus(raw: str, modulus: int | None, value: int) -> None:
    assert normalize_integer(raw, modulus) == value


def test_extract_boxed_nested_and_escaped_braces() -> None:
    assert extract_boxed(r"\boxed{\{1, 2\}}") == r"\{1, 2\}"
    assert extract_boxed(r"\boxed{\frac{a}{b}} text") == r"\frac{a}{b}"
    assert extract_boxed("nothing") is None


def test_steps_code_boxes_ignored_and_outputs_used() -> None:
    steps = (
        Step("text", "Compute it.\n"),
        Step("code", '```python\nprint(f"\\\\boxed{{{3}}}")\n```\n'),
        Step("output", "```output\n3\n```\n", status="ok"),
    )
    completion = "".join(s.text for s in steps)
    got = extract_answer(completion, steps)
    assert got == Answer(raw="3", value=3, source="code_output")
    steps2 = steps + (Step("text", "So the answer is $\\boxed{2003}$."),)
    got2 = extract_answer("".join(s.text for s in steps2), steps2, modulus=1000)
    assert got2 == Answer(raw="2003", value=3, source="boxed")


# (answer raw, reference, modulus, expected)
CORRECT_CASES = [
    ("025", "25", None, True),
    ("1,000", "1000", None, True),
    ("12.0", "12", None, True),
    ("1025", "25", 1000, True),
    ("1025", "25", None, False),
    ("90", r"90^\circ", None, True),
    (r"\dfrac{14}{3}", r"\frac{14}{3}", None, True),
    (r"\frac{14}{3}", r"\frac{3}{14}", None, False),
    (r"\left( 3, \frac{\pi}{2} \right)", r"\left( 3, \frac{\pi}{2} \right)", None, True),
    (r"(3,\frac{\pi}{2})", r"\left( 3, \frac{\pi}{2} \right)", None, True),
    (r"\text{Evelyn}", r"\text{Evelyn}", None, True),
    ("Evelyn", r"\text{Evelyn}", None, True),
    ("6-5i", "6 - 5i", None, True),
    (r"3\sqrt{13}", r"3\sqrt{13}", None, True),
    ("x=5", "5", None, True),
    ("12", r"\frac{14}{3}", None, False),
    (r"\frac12", r"\frac{1}{2}", None, True),
    ("1", "f(x)=1", None, True),
    ("1", "|AB|=1", None, True),
    ("32349", "32, 349", None, False),
]


@pytest.mark.parametrize("raw,reference,modulus,expected", CORRECT_CASES)
def test_is_correct(raw: str, reference: str, modulus: int | None, expected: bool) -> None:
    answer = Answer(raw=raw, value=normalize_integer(raw, modulus), source="boxed")
    assert is_correct(answer, reference, modulus) is expected


def test_is_correct_none() -> None:
    assert not is_correct(None, "12")
    assert not is_correct(Answer("12", 12, "boxed"), None)


def _rows(name: str) -> list[dict]:
    with open(DATA / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_real_references_roundtrip() -> None:
    """Every reference answer in real files grades itself correct when boxed by a model."""
    for name in ("aime2025.jsonl", "math500.jsonl", "hmmt_feb_2025.jsonl", "olympiadbench_numeric.jsonl"):
        for row in _rows(name):
            got = extract_answer(f"</think>\nThe answer is $\\boxed{{{row['answer']}}}$.")
            assert got is not None, (name, row["id"])
            assert is_correct(got, row["answer"]), (name, row["id"], row["answer"])
            if row.get("answer_is_integer") is True or name == "aime2025.jsonl":
                assert got.value == int(row["answer"].replace(",", "")), (name, row["id"])


def test_real_tir_examples_grade_correct() -> None:
    rows = [r for r in _rows("tir_examples.jsonl") if "```output" in r.get("solution", "")]
    assert len(rows) >= 30
    wrong = [r["id"] for r in rows if not is_correct(extract_answer(r["solution"]), r["answer"])]
    # Known, and right to be ungraded without symbolic equivalence: one trace boxes
    # 6.24499799839840 for \sqrt{39}, one boxes both roots "-2x - 1, 2x + 1" for "-2x-1",
    # one leaves \sqrt{37 - 20\sqrt{3}} unsimplified for 5-2\sqrt{3}.
    assert sorted(wrong) == [
        "tora-corpus-math-train-2737-0",
        "tora-corpus-math-train-3460-0",
        "tora-corpus-math-train-4067-0",
    ]


def test_normalize_latex_forms() -> None:
    assert normalize_latex(r"$\dfrac{1}{2}$") == normalize_latex(r"\frac{1}{2}")
    assert normalize_latex(r"\left(1, 2\right)") == "(1,2)"
