"""TIR training data from a run: keep the traces worth training on, write a Hugging Face dataset.

A TIR trace is kept when (each a reason it may be dropped, counted in `GenStats`):
  wrong         its answer is not the reference (unless `keep_incorrect`)
  unfinished    it ended without an answer (token cap, time, abort, backend error)
  no_code       no code cell ran (no tool output)
  bad_cell      a cell crashed, timed out, ran out of memory or lost its kernel; a Python error
                ("error" status) also drops it unless `allow_cell_errors`
  too_short / too_long   outside [min_tokens, max_tokens] generated tokens
  duplicate     a near-duplicate (word 5-gram Jaccard >= `dedup`) of a shorter kept trace
  over_k        the problem already has `keep` traces (shortest are kept first)

Dataset rows (`save_to_disk`; `datasets.load_from_disk(DIR)` gives a `Dataset`), one per trace:
  id ("<problem>#<index>"), problem_id, problem, answer (reference string), predicted (int),
  messages: list of {role, content}: the user prompt (the plain TIR instruction, no few-shot
            example, no system prompt), then "assistant" turns (prose and ```python blocks) and
            "tool" turns (the ```output blocks exactly as fed to the model: never train on them);
            the concatenation of the non-user contents is exactly the completion,
  completion, mode, seed, index, tokens, tool_calls, tool_statuses (list), finish, seconds,
  problem_pass_rate (share of the problem's samples that were right), source.
Not covered: running the agent (runner.py), tokenising or masking for a trainer (training/).
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import UserError
from agent.types import Problem, Trace
from evals.store import RunData, SampleRecord

FATAL_STATUSES = frozenset({"crashed", "timeout", "oom", "restarted"})
UNFINISHED = frozenset({"length", "time", "aborted", "error", "tool_limit"})


@dataclass(frozen=True)
class FilterConfig:
    keep: int = 4  # at most this many traces per problem
    min_tokens: int = 0
    max_tokens: int | None = None
    allow_cell_errors: bool = False
    dedup: float = 0.8  # Jaccard threshold; > 1 disables
    keep_incorrect: bool = False


@dataclass
class GenStats:
    problems: int = 0
    samples: int = 0
    kept: int = 0
    problems_with_data: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    path: Path | None = None

    def describe(self) -> str:
        why = ", ".join(f"{k} {v}" for k, v in sorted(self.dropped.items())) or "none"
        return (f"gen-tir: kept {self.kept} of {self.samples} traces from {self.problems_with_data} of "
                f"{self.problems} problems; dropped: {why}; dataset: {self.path}")


def reject_reason(rec: SampleRecord, cfg: FilterConfig) -> str | None:
    """Why a trace is not kept on its own merits (dedup and per-problem caps come later)."""
    if not rec.correct and not cfg.keep_incorrect:
        return "wrong"
    if rec.answer is None or rec.finish in UNFINISHED:
        return "unfinished"
    statuses = rec.tool_statuses
    if not statuses:
        return "no_code"
    if any(s in FATAL_STATUSES for s in statuses) or (not cfg.allow_cell_errors and "error" in statuses):
        return "bad_cell"
    if rec.tokens < cfg.min_tokens:
        return "too_short"
    if cfg.max_tokens is not None and rec.tokens > cfg.max_tokens:
        return "too_long"
    return None


def shingles(text: str, n: int = 5) -> frozenset[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    if len(words) < n:
        return frozenset({tuple(words)})
    return frozenset(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def jaccard(a: frozenset[Any], b: frozenset[Any]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def select(records: list[SampleRecord], cfg: FilterConfig, dropped: Counter[str]) -> list[SampleRecord]:
    """The kept traces of one problem: filtered, shortest first, near-duplicates removed, at most K."""
    ok = []
    for r in records:
        why = reject_reason(r, cfg)
        if why:
            dropped[why] += 1
        else:
            ok.append(r)
    kept: list[SampleRecord] = []
    seen: list[frozenset[tuple[str, ...]]] = []
    for r in sorted(ok, key=lambda r: (r.tokens, r.index)):
        sh = shingles(r.trace.completion)
        if any(jaccard(sh, s) >= cfg.dedup for s in seen):
            dropped["duplicate"] += 1
        elif len(kept) >= cfg.keep:
            dropped["over_k"] += 1
        else:
            kept.append(r)
            seen.append(sh)
    return kept


def to_messages(problem: Problem, trace: Trace) -> list[dict[str, str]]:
    """User prompt, then assistant and tool turns whose contents concatenate to the completion."""
    from agent.prompts import render

    messages = [dict(m) for m in render(problem, "tir", "r1")]
    buf = ""
    for s in trace.steps:
        if s.kind == "output":
            if buf:
                messages.append({"role": "assistant", "content": buf})
                buf = ""
            messages.append({"role": "tool", "content": s.text})
        else:
            buf += s.text
    if buf:
        messages.append({"role": "assistant", "content": buf})
    return messages


def _row(problem: Problem, rec: SampleRecord, pass_rate: float) -> dict[str, Any]:
    t = rec.trace
    return {
        "id": f"{problem.id}#{rec.index}", "problem_id": problem.id, "problem": problem.text,
        "answer": problem.answer or "", "predicted": rec.answer, "messages": to_messages(problem, t),
        "completion": t.completion, "mode": rec.mode, "seed": rec.seed, "index": rec.index,
        "tokens": rec.tokens, "tool_calls": rec.tool_calls, "tool_statuses": list(rec.tool_statuses),
        "finish": rec.finish, "seconds": rec.seconds, "problem_pass_rate": pass_rate, "source": problem.source,
    }


def features() -> Any:
    from datasets import Features, List, Value

    return Features({
        "id": Value("string"), "problem_id": Value("string"), "problem": Value("string"),
        "answer": Value("string"), "predicted": Value("int64"),
        "messages": List({"role": Value("string"), "content": Value("string")}),
        "completion": Value("string"), "mode": Value("string"), "seed": Value("int64"), "index": Value("int64"),
        "tokens": Value("int64"), "tool_calls": Value("int64"), "tool_statuses": List(Value("string")),
        "finish": Value("string"), "seconds": Value("float64"), "problem_pass_rate": Value("float64"),
        "source": Value("string"),
    })


def _problems(data: RunData) -> dict[str, Problem]:
    probs = {d["id"]: Problem.from_dict(d) for d in data.manifest.get("problem_set", [])}
    probs.update({pid: r.problem for pid, r in data.problems.items()})
    return probs


def build_dataset(data: RunData, cfg: FilterConfig, out: Path) -> GenStats:
    """Filter the run's traces and write the dataset to `out` (replacing an older one)."""
    import datasets

    probs = _problems(data)
    stats = GenStats(problems=len(probs), path=out)
    rows = []
    for pid, problem in probs.items():
        recs = [r for _, r in sorted(data.samples.get(pid, {}).items())]
        stats.samples += len(recs)
        kept = select(recs, cfg, stats.dropped)
        rate = sum(r.correct for r in recs) / len(recs) if recs else 0.0
        rows += [_row(problem, r, rate) for r in kept]
        stats.problems_with_data += bool(kept)
    stats.kept = len(rows)
    feats = features()
    ds = datasets.Dataset.from_dict({k: [r[k] for r in rows] for k in feats}, features=feats)
    if out.exists():
        if not (out / "state.json").exists() and any(out.iterdir()):
            raise UserError(f"{out} exists and is not a dataset folder; not overwriting it")
        shutil.rmtree(out)
    ds.save_to_disk(str(out), num_shards=1 if not rows else None)  # 0 shards would not load back
    return stats
