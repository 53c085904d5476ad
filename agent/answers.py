"""Answer extraction, integer normalisation and grading: pure functions, one scoring path.

`extract_answer` reads what the model's prose states (code blocks removed: a
`print(f"\\boxed{{{x}}}")` is code, not an answer), in math-verify's order of priority: a
Minerva "final answer is $X$. I hope it is correct." sentence; else the later of the last
complete `\\boxed{...}` / `\\fbox{...}` / `\\boxed N` and a "final answer ... is X" sentence;
else an "Answer: X" / "the answer is X" sentence; else the printed result of the last code cell
(the last non-empty line of the last "output" step, when it is a number). Sentence answers carry
their own source ("final_answer"), which a vote weight (`sentence`) can count lower.
`normalize_integer` turns LaTeX-ish answers into an int (thousands separators `1,000` `1{,}000`
`1,\\!000` `1\\,000`, `\\frac` that divide evenly, `12.0`, `025`, units and text wrappers,
`^\\circ`, `(B) 12`, `f(x)=1`, small integer expressions like `2^{10}`), or None when the answer
is not one integer (`32, 349` is a list): non-integers are recorded with their raw text, never
forced. `grade` (extract_answer + is_correct) is the one grader: GRPO rewards, the eval store,
the gen-tir filters and the agent's vote all use it. tests/agent/test_grading_mathverify.py
checks it against math-verify and lists where it differs on purpose.

Not covered: symbolic equivalence of general expressions (no sympy: `\\sqrt{8}` and `2\\sqrt{2}`
compare unequal), multi-part answers, or answers in words ("twelve").
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence

from agent.types import Answer, AnswerSource, Step

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*")
_CODE_BLOCK_RE = re.compile(r"```(?:python|py|output)\b.*?(?:```|\Z)", re.DOTALL)
_OUTPUT_BLOCK_RE = re.compile(r"```output\s*\n(.*?)(?:```|\Z)", re.DOTALL)
_WRAPPERS = r"\\(?:text[a-z]*|math(?:rm|bf|it|sf|tt|normal)|mbox|hbox|emph|operatorname|bm|boldsymbol)"
_TEXT_WRAP_RE = re.compile(_WRAPPERS + r"\s*\{([^{}]*)\}")
_TEXT_UNIT_RE = re.compile(_WRAPPERS + r"\s*\{([^{}]*)\}(\s*\^\s*\{?\s*\d+\s*\}?)?")
_SPACING_RE = re.compile(r"\\[,;:! ]|\\quad|\\qquad|~|\\displaystyle")
_DEGREE_RE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\\circ|\\degree|°")
_CHOICE_RE = re.compile(r"^\(?\s*[A-Ea-e]\s*\)\s*[:.]?\s*")
_LHS_RE = re.compile(r"^[A-Za-z](?:_\{?\w+\}?)?\s*=\s*")
_EQ_RHS_RE = re.compile(r"^[^=<>]*?(?<![<>!\\])=(?!=)\s*([^=]+)$")  # `f(x)=1`, `|AB| = 1`: the right side
_LIST_RE = re.compile(r"\d\s*[,;]\s+\d|\d\s*;\s*\d")  # `32, 349` is a list, `32,349` thousands
_SPACED_DIGITS_RE = re.compile(r"^[+-]?\d+(?:\s+\d+)+$")
_SI_THOUSANDS_RE = re.compile(r"^[+-]?\d{1,3}(?: \d{3})+$")
_THOUSANDS_RE = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.0+)?$")
_FRAC_RE = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_FRAC_SHORT_RE = re.compile(r"\\[dt]?frac\s*(\d)\s*(\d)")
_NUMBER_RE = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$")
_UNIT_TAIL_RE = re.compile(r"^([+-]?\d[\d.]*)\s*[A-Za-z][A-Za-z ]*(?:\^\{?\d\}?)?$")
_ORDINAL_RE = re.compile(r"\^\s*\{\s*\\text[a-z]*\s*\{\s*(?:st|nd|rd|th)\s*\}\s*\}|\^\s*\{?\s*(?:st|nd|rd|th)\b\s*\}?")
_EXPR_OK_RE = re.compile(r"^[\d+\-*/^() ]+$")
_MAX_BITS = 4096
# A stated value: $...$ / $$...$$ / \\(...\\) math, or a bare number (1,234 thousands allowed).
_VALUE = r"(?:\$\$?(?P<m>[^$]{1,120}?)\$\$?|\\\((?P<p>.{1,120}?)\\\)|(?P<n>[-+]?\d+(?:,\d{3})*(?:\.\d+)?)(?![\w^/]))"
_MINERVA_RE = re.compile(r"final answer is:?\s*" + _VALUE + r"\.?\s?I hope", re.IGNORECASE)
_FINAL_RE = re.compile(r"final answer[^\n]{0,100}?\s+is:?\s*(?:\*\*)?" + _VALUE, re.IGNORECASE)
_ANSWER_RE = re.compile(r"\banswer(?:\*\*)?\s*(?::|is:?)\s*(?:\*\*)?\s*" + _VALUE, re.IGNORECASE)


def _braced(text: str, start: int) -> tuple[str, int] | None:
    """Content of the brace group opening at text[start] == '{', and the index after it."""
    depth = 0
    for i in range(start, len(text)):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] in "{}":
            continue
        if c == "{" and (i == 0 or text[i - 1] != "\\"):
            depth += 1
        elif c == "}" and (i == 0 or text[i - 1] != "\\"):
            depth -= 1
            if depth == 0:
                return text[start + 1 : i], i + 1
    return None


def _boxes(text: str) -> list[tuple[int, str]]:
    """(end position, content) of every complete `\\boxed{...}` / `\\fbox{...}` / `\\boxed N` in text."""
    found: list[tuple[int, str]] = []
    for m in _BOX_RE.finditer(text):
        pos = m.end()
        if pos < len(text) and text[pos] == "{":
            got = _braced(text, pos)
            if got is not None:
                found.append((got[1], got[0].strip()))
        else:
            bare = re.match(r"[^\s$\\<]+", text[pos:])  # `\boxed 100</think>` is 100
            if bare:
                found.append((pos + bare.end(), bare.group(0).strip()))
    return found


def extract_boxed(text: str) -> str | None:
    """The content of the last complete `\\boxed{...}` or `\\fbox{...}` (nested braces kept).

    A box cut off by truncation (no closing brace) is skipped in favour of the one before it.
    `\\boxed 5` (no braces) gives "5".
    """
    boxes = _boxes(text)
    return boxes[-1][1] if boxes else None


def _strip_wrappers(s: str) -> str:
    """Remove `$`, `\\(`, spacing commands, `\\left`/`\\right`, degree signs and trailing dots."""
    s = s.strip().replace(",\\!", ",").replace("\\$", "").replace("$", "").replace("\\(", "").replace("\\)", "")
    s = s.replace("\\[", "").replace("\\]", "").replace("\\left", "").replace("\\right", "")
    s = _SPACING_RE.sub(" ", s)
    s = _DEGREE_RE.sub("", s)
    s = s.replace("\\%", "").replace("%", "").replace("−", "-")
    s = s.replace("{,}", ",").replace("\\cdot", "*").replace("\\times", "*")
    return s.strip().rstrip(".").strip()


def _unwrap_text(s: str) -> str:
    """`\\text{...}` and friends: keep numeric content, drop words (units), with their exponent."""

    def repl(m: re.Match[str]) -> str:
        inner = m.group(1).strip()
        return inner + (m.group(2) or "") if re.search(r"\d", inner) else " "

    prev = None
    while prev != s:
        prev, s = s, _TEXT_UNIT_RE.sub(repl, s)
    return s


def _eval_int_expr(s: str) -> int | None:
    """Evaluate a small integer expression (+ - * / ^ and parentheses) safely, or None."""
    if not _EXPR_OK_RE.match(s) or not re.search(r"\d", s):
        return None
    try:
        tree = ast.parse(s.replace("^", "**"), mode="eval")
    except (SyntaxError, ValueError):
        return None

    def ev(node: ast.AST) -> int | None:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = ev(node.operand)
            return None if v is None else (-v if isinstance(node.op, ast.USub) else v)
        if isinstance(node, ast.BinOp):
            a, b = ev(node.left), ev(node.right)
            if a is None or b is None:
                return None
            if isinstance(node.op, ast.Add):
                return a + b
            if isinstance(node.op, ast.Sub):
                return a - b
            if isinstance(node.op, ast.Mult):
                return a * b
            if isinstance(node.op, ast.Div):
                return a // b if b != 0 and a % b == 0 else None
            if isinstance(node.op, ast.Pow):
                if b < 0 or b * max(a.bit_length(), 1) > _MAX_BITS:
                    return None
                return int(a**b)
        return None

    return ev(tree)


def _to_int(s: str) -> int | None:
    """A cleaned string to int: plain, thousands-separated, float with zero fraction, a/b, expr."""
    s = s.strip()
    if not s or _LIST_RE.search(s):
        return None
    if _SPACED_DIGITS_RE.match(s) and not _SI_THOUSANDS_RE.match(s):
        return None  # `12 13` (say from `12 \text{ and } 13`) is two numbers, not 1213
    s = s.replace(" ", "")
    if _THOUSANDS_RE.match(s):
        s = s.replace(",", "")
    if _NUMBER_RE.match(s):
        if "." in s:
            whole, _, frac = s.partition(".")
            if frac.strip("0"):
                return None
            s = whole if whole not in ("", "+", "-") else "0"
        return int(s)
    return _eval_int_expr(s.replace("{", "(").replace("}", ")"))


def _clean_for_int(raw: str) -> str:
    s = _strip_wrappers(_ORDINAL_RE.sub("", raw))  # `12^{\\text{th}}` is 12
    s = _unwrap_text(s)
    s = _strip_wrappers(s)
    s = _CHOICE_RE.sub("", s)
    rhs = _EQ_RHS_RE.match(s)
    if rhs:
        s = rhs.group(1)
    s = _FRAC_SHORT_RE.sub(r"\\frac{\1}{\2}", s)
    s = _FRAC_RE.sub(r"((\1)/(\2))", s)
    tail = _UNIT_TAIL_RE.match(s.strip())
    if tail:
        s = tail.group(1)
    return s.strip().rstrip(".")


def normalize_integer(raw: str, modulus: int | None = None) -> int | None:
    """The integer a raw answer denotes (reduced mod `modulus` when given), or None.

    >>> normalize_integer("\\\\text{(B) } 12"), normalize_integer("1,000"), normalize_integer("12.5")
    (12, 1000, None)
    """
    if raw is None:
        return None
    value = _to_int(_clean_for_int(raw))
    if value is None:
        return None
    return value % modulus if modulus else value


def _last_output_line(steps: Sequence[Step], completion: str) -> str | None:
    outputs = [s.text for s in steps if s.kind == "output"]
    if not outputs and not steps:
        outputs = _OUTPUT_BLOCK_RE.findall(completion)
    if not outputs:
        return None
    text = outputs[-1].replace("```output", "").replace("```", "")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else None


def _prose(completion: str, steps: Sequence[Step]) -> str:
    """The model's own text: text steps when steps are given, else the completion minus code/output."""
    if steps:  # a CoT sample's text step may still hold code blocks the loop did not run
        return _CODE_BLOCK_RE.sub("", "".join(s.text for s in steps if s.kind == "text"))
    return _CODE_BLOCK_RE.sub("", completion)


def _sentence(pattern: re.Pattern[str], text: str) -> tuple[int, str] | None:
    """(start, value) of the rightmost match of a final-answer sentence pattern, or None."""
    last = None
    for m in pattern.finditer(text):
        value = next(g for g in (m.group("m"), m.group("p"), m.group("n")) if g is not None)
        last = (m.start(), (extract_boxed(value) or value).strip())
    return last


def _prose_answer(prose: str) -> tuple[str, AnswerSource] | None:
    """The answer the model's own text states, in math-verify's order of priority: a Minerva
    "final answer is $X$. I hope it is correct." sentence; else the rightmost of the last box
    and a "final answer ... is X" sentence; else an "Answer: X" / "the answer is X" sentence."""
    boxes = [b for b in _boxes(prose) if b[1]]
    minerva = _sentence(_MINERVA_RE, prose)
    if minerva is not None:
        return minerva[1], "boxed" if boxes and boxes[-1][0] > minerva[0] else "final_answer"
    final = _sentence(_FINAL_RE, prose)
    if boxes and (final is None or boxes[-1][0] > final[0]):  # a box inside the sentence wins
        return boxes[-1][1], "boxed"
    if final is not None:
        return final[1], "final_answer"
    said = _sentence(_ANSWER_RE, prose)
    return (said[1], "final_answer") if said is not None else None


def extract_answer(completion: str, steps: Sequence[Step] = (), modulus: int | None = None) -> Answer | None:
    """The sample's final answer: what the prose states (a box, or a final-answer sentence, see
    `_prose_answer`), else the last code cell's printed number."""
    stated = _prose_answer(_prose(completion, steps))
    if stated is not None:
        return Answer(raw=stated[0], value=normalize_integer(stated[0], modulus), source=stated[1])
    line = _last_output_line(steps, completion)
    if line is None:
        return None
    inner = extract_boxed(line)
    candidate = inner if inner is not None else line
    cleaned = _clean_for_int(candidate).replace(" ", "")
    if _THOUSANDS_RE.match(cleaned):
        cleaned = cleaned.replace(",", "")
    if not _NUMBER_RE.match(cleaned) and _eval_int_expr(cleaned) is None:
        return None
    return Answer(raw=candidate, value=normalize_integer(candidate, modulus), source="code_output")


def normalize_latex(s: str) -> str:
    """A canonical string for non-integer comparison: no spaces, `\\left`/`\\right`, `$`, text wrappers."""
    s = _strip_wrappers(s)
    s = _TEXT_WRAP_RE.sub(lambda m: m.group(1), s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = _FRAC_SHORT_RE.sub(r"\\frac{\1}{\2}", s)
    s = s.replace("^{\\prime}", "'").replace("\\{", "{").replace("\\}", "}")
    s = re.sub(r"\s+", "", s)
    s = _LHS_RE.sub("", s)
    return s.rstrip(".")


def is_correct(answer: Answer | None, reference: str | None, modulus: int | None = None) -> bool:
    """Whether `answer` matches `reference`: integer compare when both are integers, else a
    normalised LaTeX string compare. No answer or no reference is never correct."""
    if answer is None or reference is None:
        return False
    ref_int = normalize_integer(reference, modulus)
    ans_int = answer.value if answer.value is not None else normalize_integer(answer.raw, modulus)
    if ans_int is not None and modulus:
        ans_int %= modulus
    if ref_int is not None and ans_int is not None:
        return ref_int == ans_int
    if ref_int is not None or ans_int is not None:
        return False
    return normalize_latex(answer.raw) == normalize_latex(reference)


def grade(completion: str, reference: str | None, steps: Sequence[Step] = (), modulus: int | None = None) -> bool:
    """The one grader: whether the answer `extract_answer` reads from a completion is `reference`.

    The rollout stores `extract_answer(text, steps, modulus)` as a Trace's answer, and the eval
    store scores it with `is_correct`: the same two calls, so a reward and an eval agree."""
    return is_correct(extract_answer(completion, steps, modulus), reference, modulus)
