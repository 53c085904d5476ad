"""Training data builders: traces and problem files -> Hugging Face `datasets` for SFT, GRPO and DPO.

Sources (`recipe.data`):
  * an eval run folder (`manifest.json` + `records.jsonl`, read with `evals.store.read_run`):
    graded traces, several per problem;
  * a JSONL of Trace dicts, each with its problem as a `problem` object (Problem dict) or
    matched by `problem_id` against the problem file in `problems`;
  * rows with chat `messages` (gen-tir output saved with `save_to_disk`, or JSONL): tool
    output is a `tool`/`ipython` message or a ```output block inside an assistant turn;
  * rows with `problem`, `answer`, `solution` (e.g. the shared `sft_traces_sample.jsonl`).
A bare name is looked up in the shared data folder (`sft_traces_sample`, `train_grpo`, ...).

SFT keeps the shortest correct trace per problem (graded with agent.answers when a reference is
known), optionally only problems whose pass rate in the run lies in [min_pass_rate,
max_pass_rate]; prompts are rendered with agent.prompts (the agent's own template) and each row
is tokenised to `input_ids` + `labels` (-100 on the prompt and on tool-output tokens). For the
gpt-oss family, rows come from harmony traces (whose steps hold the exact harmony text): the
prompt is rendered by agent.harmony, tool messages are labelled -100, and a final answer cut by
the early stop is closed with `<|return|>`; GRPO prompts are the harmony prompt text.
GRPO rows are problem/answer pairs with integer answers. DPO pairs take a short correct trace as
chosen and a wrong one, or a correct one `dpo_min_length_ratio` times longer, as rejected, and
drop pairs more similar than `dpo_max_similarity`. DPO cannot mask tool output (TRL's DPO has no
per-token mask): tool output is part of both texts.

Not covered: downloading data, deduplication across files, or tokenising for GRPO (TRL does it).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.answers import extract_answer, is_correct
from agent.errors import UserError
from agent.jsonl import read_jsonl
from agent.types import Mode, Problem, Step, Trace

_OUTPUT_RE = re.compile(r"(```output\n.*?```\n?)", re.DOTALL)


@dataclass(frozen=True)
class Candidate:
    """One graded completion of a problem: text segments (text, trained?) and its length."""

    problem: Problem
    mode: str
    segments: tuple[tuple[str, bool], ...]
    correct: bool
    length: int  # model tokens (or characters when unknown), for "shortest"
    prompt: tuple[dict[str, str], ...] = ()  # the row's own prompt, used when it has no problem text

    @property
    def text(self) -> str:
        return "".join(t for t, _ in self.segments)


def resolve_data(spec: str) -> Path:
    """A data path on disk, or a file in the shared data folder by name (with or without .jsonl)."""
    if not spec:
        raise UserError("no training data: set the recipe field 'data' (or --set data=PATH)")
    path = Path(spec).expanduser()
    if path.exists():
        return path
    from agent.datasets import SHORT_NAMES, data_dir

    name = SHORT_NAMES.get(spec, spec)
    for cand in (data_dir() / name, data_dir() / f"{name}.jsonl"):
        if cand.exists():
            return cand
    raise UserError(f"training data {spec!r} not found (not a path, nor a file in {data_dir()})")


def _read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    if path.is_dir():
        import datasets

        try:
            ds = datasets.load_from_disk(str(path))
        except Exception as e:
            raise UserError(f"{path}: not a Hugging Face dataset folder ({e})") from None
        if hasattr(ds, "keys"):
            ds = ds["train"] if "train" in ds else ds[next(iter(ds.keys()))]
        yield from enumerate(ds, 1)
        return
    yield from read_jsonl(path)


def _split_outputs(text: str) -> list[tuple[str, bool]]:
    """Model text trained, ```output blocks not."""
    return [(part, not part.startswith("```output")) for part in _OUTPUT_RE.split(text) if part]


def _trace_candidate(problem: Problem, trace: Trace, correct: bool | None = None) -> Candidate:
    segs = tuple((s.text, s.kind != "output") for s in trace.steps if s.text)
    if correct is None:
        correct = is_correct(trace.answer, problem.answer, problem.modulus)
    length = trace.tokens or sum(len(t) for t, keep in segs if keep)
    return Candidate(problem, trace.mode, segs, correct, length)


def _messages_candidate(where: str, n: int, row: dict[str, Any]) -> Candidate:
    msgs = row["messages"]
    first = next((i for i, m in enumerate(msgs) if m.get("role") == "assistant"), None)
    if first is None or first == 0:
        raise UserError(f"{where} line {n}: `messages` needs a user turn followed by an assistant turn")
    segs: list[tuple[str, bool]] = []
    for m in msgs[first:]:
        content = str(m.get("content") or "")
        if m.get("role") in ("tool", "ipython"):
            segs.append((f"```output\n{content.rstrip()}\n```\n", False))
        else:
            segs.extend(_split_outputs(content))
    user: dict[str, Any] = next((m for m in reversed(msgs[:first]) if m.get("role") == "user"), {})
    text = str(row.get("problem") or user.get("content") or "")
    problem = Problem(id=str(row.get("id", n)), text=text, answer=_ref(row), modulus=row.get("modulus"))
    prompt = tuple({"role": str(m["role"]), "content": str(m["content"])} for m in msgs[:first])
    return _graded(problem, "tir" if any(not k for _, k in segs) else "cot", tuple(segs), prompt,
                   keep_prompt="problem" not in row)


def _ref(row: dict[str, Any]) -> str | None:
    ans = row.get("answer")
    return None if ans is None or str(ans).strip() == "" else str(ans).strip()


def _graded(problem: Problem, mode: str, segs: tuple[tuple[str, bool], ...],
            prompt: tuple[dict[str, str], ...] = (), keep_prompt: bool = False) -> Candidate:
    text = "".join(t for t, _ in segs)
    steps = tuple(Step("output" if not k else "text", t) for t, k in segs)
    correct = problem.answer is None or is_correct(extract_answer(text, steps, problem.modulus),
                                                   problem.answer, problem.modulus)
    length = sum(len(t) for t, k in segs if k)
    return Candidate(problem, mode, segs, correct, length, prompt if keep_prompt else ())


def _problems_by_id(spec: str) -> dict[str, Problem]:
    from agent.datasets import load_problems

    return {p.id: p for p in load_problems(spec, require_answer=False)}


def load_candidates(spec: str, problems: str = "") -> list[Candidate]:
    """Every graded completion in the source `spec` (see the module docstring)."""
    path = resolve_data(spec)
    if path.is_dir() and (path / "manifest.json").exists():
        from evals.store import read_run

        run = read_run(path)
        out = []
        for rec in run.all_samples():
            prob = run.problems.get(rec.problem_id)
            problem = prob.problem if prob else Problem(id=rec.problem_id, text="")
            out.append(_trace_candidate(problem, rec.trace, rec.correct))
        return out
    by_id = _problems_by_id(problems) if problems else {}
    out = []
    for n, row in _read_rows(path):
        out.append(_row_candidate(str(path), n, row, by_id))
    return out


def _row_candidate(where: str, n: int, row: dict[str, Any], by_id: dict[str, Problem]) -> Candidate:
    if "steps" in row and "problem_id" in row:  # a Trace dict
        try:
            trace = Trace.from_dict(row)
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{where} line {n}: not a valid trace ({type(e).__name__}: {e})") from None
        if isinstance(row.get("problem"), dict):
            problem = Problem.from_dict(row["problem"])
        elif trace.problem_id in by_id:
            problem = by_id[trace.problem_id]
        else:
            raise UserError(f"{where} line {n}: trace of problem {trace.problem_id!r} has no problem "
                            "(embed it as `problem` or set the recipe field 'problems')")
        return _trace_candidate(problem, trace)
    if isinstance(row.get("messages"), list):
        return _messages_candidate(where, n, row)
    if row.get("problem") and row.get("solution"):
        problem = Problem(id=str(row.get("id", n)), text=str(row["problem"]), answer=_ref(row),
                          modulus=row.get("modulus"))
        segs = tuple(_split_outputs(str(row["solution"])))
        return _graded(problem, "tir" if "```python" in row["solution"] else "cot", segs)
    raise UserError(f"{where} line {n}: no usable columns (need a trace, `messages`, or `problem` + `solution`)")


def pass_rates(cands: Sequence[Candidate]) -> dict[str, float]:
    """Fraction of correct candidates per problem id."""
    tot: dict[str, list[int]] = {}
    for c in cands:
        t = tot.setdefault(c.problem.id, [0, 0])
        t[0] += int(c.correct)
        t[1] += 1
    return {k: ok / n for k, (ok, n) in tot.items()}


def select_sft(cands: Sequence[Candidate], min_pass: float = 0.0, max_pass: float = 1.0) -> list[Candidate]:
    """The shortest correct candidate of each problem whose pass rate is within [min_pass, max_pass]."""
    rates = pass_rates(cands)
    best: dict[str, Candidate] = {}
    for c in cands:
        if not c.correct or not (min_pass <= rates[c.problem.id] <= max_pass):
            continue
        if c.problem.id not in best or c.length < best[c.problem.id].length:
            best[c.problem.id] = c
    return list(best.values())


def prompt_messages(problem: Problem, mode: str, family: str, system: str = "") -> list[dict[str, str]]:
    """The agent's own chat prompt for a problem (agent.prompts.render; `system`: a recipe's
    system_prompt, a name in agent.prompts.SYSTEM_PROMPTS or text, '' for the family's)."""
    from agent.prompts import render

    return render(problem, "tir" if mode == "tir" else "cot", family, system or None)


def _ids(tokenizer: Any, messages: Sequence[dict[str, str]]) -> list[int]:
    ids = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=True)
    if hasattr(ids, "keys"):
        ids = ids["input_ids"]
    return [int(i) for i in ids]


def harmony_row(cand: Candidate, effort: str = "high") -> dict[str, list[int]]:
    """A harmony trace as `input_ids` + `labels`: -100 on the prompt and on the tool messages."""
    from agent import harmony

    enc = harmony.encoding()
    ids = harmony.prompt_ids(cand.problem, "tir" if cand.mode == "tir" else "cot", effort)
    labels = [-100] * len(ids)
    for text, trained in cand.segments:
        seg = [int(i) for i in enc.encode(text, allowed_special="all")]
        ids += seg
        labels += seg if trained else [-100] * len(seg)
    if ids and ids[-1] not in harmony.stop_token_ids():  # cut at the boxed answer: close the message
        ids.append(harmony.return_token_id())
        labels.append(ids[-1])
    return {"input_ids": ids, "labels": labels}


def tokenize_candidate(tokenizer: Any, cand: Candidate, family: str, system: str = "") -> dict[str, list[int]]:
    """`input_ids` and `labels` (-100 on prompt and tool output), ending in the EOS token."""
    if family == "gpt-oss":
        return harmony_row(cand)
    msgs = list(cand.prompt) if cand.prompt else prompt_messages(cand.problem, cand.mode, family, system)
    prompt = _ids(tokenizer, msgs)
    ids, labels = list(prompt), [-100] * len(prompt)
    for text, trained in cand.segments:
        seg = tokenizer.encode(text, add_special_tokens=False)
        ids += seg
        labels += seg if trained else [-100] * len(seg)
    ids.append(tokenizer.eos_token_id)
    labels.append(tokenizer.eos_token_id)
    return {"input_ids": ids, "labels": labels}


def build_sft_dataset(recipe: Any, tokenizer: Any, family: str) -> Any:
    """The SFT dataset (`input_ids`, `labels`) for a recipe; UserError when no row is usable."""
    import datasets

    cands = load_candidates(recipe.data, getattr(recipe, "problems", ""))
    chosen = select_sft(cands, recipe.min_pass_rate, recipe.max_pass_rate)
    rows = [tokenize_candidate(tokenizer, c, family, recipe.system_prompt) for c in chosen]
    rows = [r for r in rows if len(r["input_ids"]) <= recipe.max_length]
    if recipe.max_rows:
        rows = rows[: recipe.max_rows]
    if not rows:
        raise UserError(f"{recipe.data}: no usable SFT rows ({len(cands)} completions, {len(chosen)} correct "
                        f"after the pass-rate filter, none within max_length={recipe.max_length})")
    return datasets.Dataset.from_list(rows)


def grpo_prompt(problem: Problem, mode: Mode, family: str, system: str = "", effort: str = "high") -> Any:
    """A GRPO row's prompt: chat messages (agent.prompts.render, `system` as in `prompt_messages`),
    or for the gpt-oss family the harmony prompt as text (special tokens written out; `effort`:
    its reasoning effort). The GRPO rollout (training/grpo_rollout.py) generates from exactly this."""
    if family == "gpt-oss":
        from agent import harmony

        return harmony.decode(harmony.prompt_ids(problem, mode, effort))
    return prompt_messages(problem, mode, family, system)


def build_grpo_dataset(recipe: Any, family: str) -> tuple[Any, dict[str, Problem]]:
    """GRPO rows (`prompt` from `grpo_prompt`, `answer`, `problem_id`) of problems with integer
    answers, and the problems by the text of their last prompt message (for the GRPO rollout)."""
    import datasets

    from agent.answers import normalize_integer
    from agent.datasets import load_problems

    src = recipe.data if recipe.data else ""
    if not src:
        raise UserError("no training data: set the recipe field 'data' (or --set data=PATH)")
    problems = load_problems(src, require_answer=True)
    keep = [p for p in problems if p.answer is not None and normalize_integer(p.answer) is not None]
    if recipe.max_rows:
        keep = keep[: recipe.max_rows]
    if not keep:
        raise UserError(f"{src}: no usable GRPO rows (no problem has an integer answer)")
    mode: Mode = "tir" if recipe.tir else "cot"
    rows: list[dict[str, Any]] = []
    by_prompt: dict[str, Problem] = {}
    for p in keep:
        prompt = grpo_prompt(p, mode, family, recipe.system_prompt, recipe.rollout.reasoning_effort)
        rows.append({"prompt": prompt, "answer": p.answer, "problem_id": p.id})
        by_prompt[prompt if isinstance(prompt, str) else prompt[-1]["content"]] = p
    return datasets.Dataset.from_list(rows), by_prompt


def similarity(a: str, b: str) -> float:
    """Word-level similarity ratio in [0, 1] (difflib)."""
    return difflib.SequenceMatcher(None, a.split(), b.split(), autojunk=False).ratio()


def select_dpo(cands: Sequence[Candidate], min_ratio: float, max_sim: float) -> list[tuple[Candidate, Candidate]]:
    """(chosen, rejected) pairs: per problem the shortest correct candidate against the shortest
    wrong one, and against the longest correct one when it is `min_ratio` times longer."""
    by_pid: dict[str, list[Candidate]] = {}
    for c in cands:
        by_pid.setdefault(c.problem.id, []).append(c)
    pairs = []
    for group in by_pid.values():
        good = sorted((c for c in group if c.correct), key=lambda c: c.length)
        bad = sorted((c for c in group if not c.correct), key=lambda c: c.length)
        if not good:
            continue
        rejects = bad[:1]
        if len(good) > 1 and good[-1].length >= min_ratio * max(good[0].length, 1):
            rejects.append(good[-1])
        for r in rejects:
            if similarity(good[0].text, r.text) <= max_sim:
                pairs.append((good[0], r))
    return pairs


def build_dpo_dataset(recipe: Any, family: str) -> Any:
    """DPO rows (`prompt` messages, `chosen`, `rejected` assistant turns)."""
    import datasets

    cands = load_candidates(recipe.data, getattr(recipe, "problems", ""))
    pairs = select_dpo(cands, recipe.dpo_min_length_ratio, recipe.dpo_max_similarity)
    if recipe.max_rows:
        pairs = pairs[: recipe.max_rows]
    if not pairs:
        raise UserError(f"{recipe.data}: no usable DPO pairs ({len(cands)} completions; a pair needs a correct "
                        "and a wrong or much longer correct completion of the same problem)")
    rows = [
        {
            "prompt": list(c.prompt) if c.prompt else prompt_messages(c.problem, c.mode, family, recipe.system_prompt),
            "chosen": [{"role": "assistant", "content": c.text}],
            "rejected": [{"role": "assistant", "content": r.text}],
        }
        for c, r in pairs
    ]
    return datasets.Dataset.from_list(rows)
