"""Readers for `tirmath replay` sources: recorded-sample files and run stores -> RecordedProblem.

Three kinds of source:
  * a run store folder from `tirmath eval` (manifest.json + records.jsonl, read with
    `evals.store.read_run`): full traces, graded per sample;
  * a folder holding `samples.jsonl`: one Trace dict a line, each with an extra `correct` bool;
  * a recorded-samples JSONL like those in shared/data/recorded/ (fields problem_id, sample,
    answer, correct, tokens, optional latency_s / truncated / no_answer).

Every reader also returns caveats: what the source cannot tell (no answers, samples cut at a
token cap, noisy latencies), so the replay prints them instead of guessing silently. Files
without answers (the R1-Distill-1.5B file) get placeholder answer values under an explicit
assumption: `distinct` (every wrong sample has its own answer) or `same` (all wrong samples of
a problem share one). Placeholders are >= 10**6 so they never collide with real answers.
This module does no simulation (evals/replay_sim.py) and no grading beyond reading `correct`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.answers import normalize_integer
from agent.errors import UserError
from agent.jsonl import read_jsonl
from agent.types import Answer, Trace

GOLD_PLACEHOLDER = 1_000_000
SAME_WRONG_PLACEHOLDER = 2_000_000
DISTINCT_WRONG_BASE = 3_000_000


@dataclass(frozen=True)
class RecordedSample:
    """One recorded sample: its trace (answer, tokens, finish), correctness and wall latency."""

    trace: Trace
    correct: bool
    latency: float | None = None


@dataclass(frozen=True)
class RecordedProblem:
    id: str
    samples: tuple[RecordedSample, ...]

    @property
    def correct_values(self) -> frozenset[int]:
        return frozenset(
            s.trace.answer.value for s in self.samples if s.correct and s.trace.answer and s.trace.answer.value is not None
        )


@dataclass(frozen=True)
class Source:
    name: str
    problems: tuple[RecordedProblem, ...]
    caveats: tuple[str, ...]
    has_latency: bool = False


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        yield from read_jsonl(path)
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None


def _trace(pid: str, index: int, answer: Answer | None, tokens: int, truncated: bool, mode: str) -> Trace:
    finish = "length" if truncated else ("answer" if answer else "eos")
    return Trace(pid, index, 0, mode, (), answer, finish, tokens, 0)  # type: ignore[arg-type]


def _recorded_answer(row: dict[str, Any], has_answers: bool, assume_wrong: str) -> Answer | None:
    if has_answers:
        raw = row.get("answer")
        return None if raw is None else Answer(str(raw), normalize_integer(str(raw)), "boxed")
    if row.get("no_answer"):
        return None
    if row["correct"]:
        return Answer("<gold>", GOLD_PLACEHOLDER, "boxed")
    if assume_wrong == "same":
        return Answer("<wrong>", SAME_WRONG_PLACEHOLDER, "boxed")
    return Answer("<wrong>", DISTINCT_WRONG_BASE + int(row["sample"]), "boxed")


def read_recorded(path: Path, assume_wrong: str = "distinct") -> Source:
    """A recorded-samples JSONL (shared/data/recorded/*.jsonl)."""
    rows = list(_jsonl(path))
    if not rows:
        raise UserError(f"{path}: no samples")
    for n, row in rows:
        missing = [k for k in ("problem_id", "sample", "correct", "tokens") if k not in row]
        if missing:
            raise UserError(f"{path} line {n}: not a recorded sample (missing {', '.join(missing)})")
    has_answers = any(r.get("answer") is not None for _, r in rows)
    mode = "tir" if "pythontool" in path.name else "cot"
    groups: dict[str, list[RecordedSample]] = {}
    for _, row in rows:
        ans = _recorded_answer(row, has_answers, assume_wrong)
        lat = row.get("latency_s")
        tr = _trace(str(row["problem_id"]), int(row["sample"]), ans, int(row["tokens"]), bool(row.get("truncated")), mode)
        groups.setdefault(tr.problem_id, []).append(RecordedSample(tr, bool(row["correct"]), lat))
    problems = tuple(RecordedProblem(pid, tuple(sorted(s, key=lambda x: x.trace.index))) for pid, s in groups.items())
    caveats = _recorded_caveats([r for _, r in rows], has_answers, assume_wrong, problems)
    has_latency = all(r.get("latency_s") is not None for _, r in rows)
    return Source(path.name, problems, tuple(caveats), has_latency)


def _recorded_caveats(
    rows: list[dict[str, Any]], has_answers: bool, assume_wrong: str, problems: tuple[RecordedProblem, ...]
) -> list[str]:
    out: list[str] = []
    n = max(len(p.samples) for p in problems)
    out.append(f"at most {n} recorded samples per problem: no policy can draw more than {n}")
    if not has_answers:
        how = "all distinct (optimistic for voting)" if assume_wrong == "distinct" else "all the same per problem (pessimistic)"
        out.append(f"the source has correctness but no answers: wrong answers assumed {how} (--assume-wrong {assume_wrong})")
    cut = [r for r in rows if r.get("truncated")]
    if cut:
        silent = sum(1 for r in cut if (r.get("answer") is None if has_answers else r.get("no_answer")))
        cap = max(int(r["tokens"]) for r in cut)
        out.append(
            f"{len(cut)} of {len(rows)} samples were cut at the ~{cap}-token cap ({silent} without an answer, they abstain);"
            " the source cannot tell what they would have answered with a larger budget"
        )
    if has_answers:
        wrong = sum(1 for r in rows if r.get("answer") is not None and not r["correct"])
        out.append(f"{wrong} answered-but-wrong samples in all: votes are mostly 'correct or abstain', so agreement is easy")
    if any("latency_s" in r for r in rows):
        out.append("latency_s is API wall-clock under concurrency (noisy), used only with --clock latency")
    return out


def read_store(path: Path) -> Source:
    """A run store folder from `tirmath eval`."""
    from evals.store import read_run

    data = read_run(path)
    problems = []
    for pid, recs in data.samples.items():
        samples = tuple(RecordedSample(r.trace, r.correct, r.seconds or None) for _, r in sorted(recs.items()))
        problems.append(RecordedProblem(pid, samples))
    if not problems:
        raise UserError(f"{path}: the run store holds no samples")
    caveats = []
    aborted = sum(1 for p in problems for s in p.samples if s.trace.finish in ("aborted", "time", "error"))
    if aborted:
        caveats.append(
            f"{aborted} samples were aborted, cut by time or failed in the recorded run: they replay as abstaining"
            " and their true completions are unknown"
        )
    if data.torn_tail:
        caveats.append("the run store had a torn last line (ignored)")
    return Source(path.name, tuple(problems), tuple(caveats), has_latency=True)


def read_samples_jsonl(path: Path) -> Source:
    """A folder's samples.jsonl: Trace dicts with an extra `correct` bool each."""
    groups: dict[str, list[RecordedSample]] = {}
    for n, row in _jsonl(path):
        if "correct" not in row:
            raise UserError(f"{path} line {n}: a trace needs a `correct` field for replay")
        try:
            tr = Trace.from_dict(row)
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{path} line {n}: not a Trace record ({e})") from None
        groups.setdefault(tr.problem_id, []).append(RecordedSample(tr, bool(row["correct"]), tr.seconds or None))
    if not groups:
        raise UserError(f"{path}: no samples")
    problems = tuple(RecordedProblem(pid, tuple(sorted(s, key=lambda x: x.trace.index))) for pid, s in groups.items())
    return Source(path.parent.name, problems, (), has_latency=True)


def read_source(source: str, assume_wrong: str = "distinct") -> Source:
    """Dispatch on what SOURCE is (a shipped recorded run's short name too); UserError when none."""
    from agent.datasets import recorded_path

    source = recorded_path(source)
    path = Path(source)
    if not path.exists():
        raise UserError(f"{source}: no such file or folder")
    if path.is_dir():
        if (path / "manifest.json").exists():
            return read_store(path)
        if (path / "samples.jsonl").exists():
            return read_samples_jsonl(path / "samples.jsonl")
        raise UserError(f"{source}: a folder but neither a run store (manifest.json) nor one with samples.jsonl")
    return read_recorded(path, assume_wrong)
