"""Differential test: tirmath's integer grading against math-verify (huggingface/Math-Verify).

A corpus of model-output endings (this repository's regression table, the real traces in
../shared/data/tir_examples.jsonl and sft_traces_sample.jsonl, and generated variants of boxes,
text wrappers, thousands separators and final-answer sentences) is graded by both, against the
right integer and against a wrong one. They must agree on every case except those in
`EXCEPTIONS`, each of which says why tirmath differs on purpose. A new disagreement fails the
test, and so does a listed exception that no longer disagrees (the list stays exact).

math-verify's side is its default `parse` (LaTeX + expression extraction) of the completion and
`verify(parse("$gold$"), ...)`, the way the field's GRPO rewards (open-r1, Fast-Math-R1) call it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import math_verify  # the `test` extra installs it: a missing install fails, never skips
import pytest

from agent.answers import extract_answer, is_correct, normalize_integer
from tests.agent.test_answers import EXTRACT_CASES

DATA = Path(os.environ.get("TIRMATH_DATA_DIR") or Path(__file__).resolve().parents[2] / ".." / "shared" / "data")

_LENIENT_THOUSANDS = ("tirmath reads a thin space (`12\\,345`) or SI spaces (`1 000 000`) between digit groups "
                      "of three as thousands; math-verify adds (357) or multiplies (0) the groups")
_STRICT_SYMBOLIC = ("tirmath does no symbolic algebra on purpose (no sympy in the scoring path): "
                    "`\\sqrt{36}`, `\\binom{7}{3}`, `4!` are not integers to it, as a grader of integer answers")
_STRICT_UNANCHORED = ("tirmath reads no bare number from prose without a box or an answer phrase: the last number "
                      "of a cut-off chain of thought is not its answer (math-verify falls back to it)")
# (case id) -> why tirmath's verdict differs from math-verify's, on purpose.
EXCEPTIONS: dict[str, str] = {
    r"table:\fbox{123}": "`\\fbox{123}`: tirmath reads \\fbox as a box (as the MATH graders do); math-verify ignores it",
    r"table:\boxed{12\,345}": _LENIENT_THOUSANDS,
    r"table:\boxed{1 000 000}": _LENIENT_THOUSANDS,
    "gen-sep-thin-2025": _LENIENT_THOUSANDS,
    "gen-sep-thin-12345": _LENIENT_THOUSANDS,
    "gen-sep-thin-1000000": _LENIENT_THOUSANDS,
    r"table:\boxed{\text{(B) } 12}": "a multiple-choice label `\\text{(B) } 12` is dropped (AMC-style answers); math-verify multiplies b*12",
    r"table:\boxed{\textbf{(C)}\ 27}": "a multiple-choice label `\\textbf{(C)}\\ 27` is dropped; math-verify multiplies c*27",
    r"table:\boxed{(D) 31}": "a multiple-choice label `(D) 31` is dropped; math-verify multiplies d*31",
    r"table:\boxed{42.}": "`\\boxed{42.}`: a full stop ending the box is punctuation to tirmath; math-verify rejects it",
    r"table:\boxed{7 \textsf{apples}}": "`\\textsf{apples}` is a unit word to tirmath like `\\text{...}`; math-verify keeps it as a symbol",
    "trace-tora70b-gsm8k-test-458": "`\\boxed{35.0\\%}` for the reference 35: tirmath drops the percent sign "
                                    "(the answer to 'what percent'); math-verify reads 0.35",
    **{f"gen-{kind}-{n}": _STRICT_SYMBOLIC for kind in ("sqrt", "binom", "factorial") for n in (7, 42, 100)},
    **{f"gen-unanchored-{n}": _STRICT_UNANCHORED for n in (7, 42, 100)},
}


def _table_cases() -> list[tuple[str, str, str]]:
    return [(f"table:{c}", c, str(v)) for c, v, _ in EXTRACT_CASES if v is not None and abs(v) < 10**12]


def _trace_cases() -> list[tuple[str, str, str]]:
    out = []
    for name in ("tir_examples.jsonl", "sft_traces_sample.jsonl"):
        with open(DATA / name, encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                gold = str(row["answer"]).strip()
                if re.fullmatch(r"-?\d+", gold):
                    out.append((f"trace-{row['id']}", row["solution"][-1500:], gold))
    return out


def _thousands(n: int) -> list[tuple[str, str]]:
    s = str(n)
    groups = [s[max(0, i - 3):i] for i in range(len(s), 0, -3)][::-1]
    return [(name, sep.join(groups)) for name, sep in
            (("comma", ","), ("brace-comma", "{,}"), ("comma-bang", ",\\!"), ("thin", "\\,"))]


def _fact(n: int) -> int:
    return 1 if n <= 1 else n * _fact(n - 1)


def _generated_cases() -> list[tuple[str, str, str]]:
    out = []
    for n in (0, 7, 42, 100, 588, 2025, 12345, 1000000):
        forms = {
            "box": rf"\boxed{{{n}}}",
            "dollar-box": rf"So the answer is $\boxed{{{n}}}$.",
            "display-box": f"**Final Answer**\n\\[\n\\boxed{{{n}}}\n\\]",
            "double-brace": rf"\boxed{{{{{n}}}}}",
            "bare-box-think": rf"so it is \boxed {n}</think>",
            "r1-revised": rf"<think>maybe \boxed{{{n + 3}}}. No, wait.</think> The answer is $\boxed{{{n}}}$.",
            "text-unit": rf"\boxed{{{n}\text{{ cm}}}}",
            "textnormal": rf"The distance is $\boxed{{{n}\textnormal{{ miles}}}}.$",
            "textit": rf"\boxed{{{n}\textit{{ apples}}}}",
            "mathrm": rf"\boxed{{{n}\mathrm{{~m}}}}",
            "mbox": rf"\boxed{{{n}\mbox{{ cm}}^2}}",
            "textbf": rf"\boxed{{\textbf{{{n}}}}}",
            "degrees": rf"\boxed{{{n}^\circ}}",
            "dollars": rf"\boxed{{\${n}}}",
            "float": rf"\boxed{{{n}.0}}",
            "frac": rf"\boxed{{\frac{{{2 * n}}}{{2}}}}",
            "lhs": rf"\boxed{{x = {n}}}",
            "function-lhs": rf"\boxed{{f(3) = {n}}}",
            "list": rf"\boxed{{{n}, {n + 1}}}",
            "final-sentence": f"The final answer is {n}",
            "final-math": f"Therefore, the final answer is ${n}$.",
            "minerva": rf"We get $\boxed{{{n + 1}}}$ and $\boxed{{{n + 2}}}$. Final Answer: The final answer is ${n}$. "
                       "I hope it is correct.",
            "answer-colon": f"Answer: {n}",
            "answer-bold": f"**Answer:** {n}",
            "answer-is": f"Putting it together, the answer is ${n}$.",
        }
        if n in (7, 42, 100):
            forms["sqrt"] = rf"\boxed{{\sqrt{{{n * n}}}}}"
            forms["binom"] = rf"\boxed{{\binom{{{n}}}{{1}}}}"
            forms["factorial"] = rf"\boxed{{{n}!/{_fact(n - 1)}}}" if n < 20 else rf"\boxed{{\frac{{{n}!}}{{{n - 1}!}}}}"
            forms["unanchored"] = f"Checking the cases, we get {n} for the first one, and then for n = "
        if n >= 1000:
            for name, text in _thousands(n):
                forms[f"sep-{name}"] = rf"\boxed{{{text}}}"
        out += [(f"gen-{name}-{n}", text, str(n)) for name, text in forms.items()]
    return out


def corpus() -> list[tuple[str, str, str]]:
    return _table_cases() + _trace_cases() + _generated_cases()


def tirmath_verdict(completion: str, gold: str) -> bool:
    return is_correct(extract_answer(completion), gold)


def math_verify_verdict(completion: str, gold: str) -> bool:
    return bool(math_verify.verify(math_verify.parse(f"${gold}$"), math_verify.parse(completion)))


def _wrong(gold: str) -> str:
    return str(int(gold) + 1)


@pytest.mark.slow  # ~12 s alone; math-verify's sympy parsing of 818 cases, slower on a busy machine
def test_grading_agrees_with_math_verify() -> None:
    cases = corpus()
    assert len(cases) >= 250
    assert all(normalize_integer(g) is not None for _, _, g in cases)
    disagree: dict[str, tuple[bool, bool]] = {}
    checks = 0
    for cid, completion, gold in cases:
        for key, ref in ((cid, gold), (f"{cid}@wrong", _wrong(gold))):
            checks += 1
            ours, theirs = tirmath_verdict(completion, ref), math_verify_verdict(completion, ref)
            if ours != theirs:
                disagree[key] = (ours, theirs)
    print(f"\ngrading vs math-verify: {checks - len(disagree)} of {checks} checks agree "
          f"({len(cases)} completions, right and wrong gold); exceptions: {sorted(disagree)}")
    unexplained = {k: v for k, v in disagree.items() if k not in EXCEPTIONS}
    assert not unexplained, f"new disagreements (tirmath, math-verify): {unexplained}"
    stale = sorted(set(EXCEPTIONS) - set(disagree))
    assert not stale, f"listed exceptions that now agree (remove them): {stale}"
