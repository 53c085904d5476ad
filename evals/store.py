"""The append-only run store: one folder per run, resumable by (problem, sample index).

Layout of RUN_DIR:
  manifest.json   run config (the fields that must match to resume), package version, problem order
  records.jsonl   one JSON object per line, each stamped with `schema`:
                  kind "sample"  - a finished sample (`SampleRecord`, with its full trace)
                  kind "problem" - a finished problem (`ProblemRecord`: vote, stop reason, time)

Each record is written with one `os.write` of the whole line, then fsynced, so a crash (even
`kill -9`) loses at most the line being written. A failed or short write (a full disk) is cut
back to the last good record at once and stops the run with one line (`StoreWriteError`). A torn last line (no newline or not JSON) is ignored on
read and cut off before the next append; a bad line in the middle is corruption and a
`UserError`. A (problem, index) already stored is never written twice. This module does no
grading and runs nothing: callers build records (see `sample_record`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import RunStopped, UserError
from agent.types import SCHEMA_VERSION, Problem, Result, Trace

STORE_SCHEMA = 1


class StoreWriteError(RunStopped):
    """A record could not be written (disk full, file size limit, I/O error); nothing torn is left."""


MANIFEST = "manifest.json"
RECORDS = "records.jsonl"


@dataclass(frozen=True)
class SampleRecord:
    """One finished sample: its full trace and its verdict against the reference. Every summary
    field (problem id, index, answer, tokens, finish, timings, ...) is read from the trace, so a
    stored line holds each fact once; lines written before (with the summary copied beside the
    trace) still load, from their trace."""

    trace: Trace
    correct: bool

    @property
    def problem_id(self) -> str:
        return self.trace.problem_id

    @property
    def index(self) -> int:
        return self.trace.index

    @property
    def seed(self) -> int:
        return self.trace.seed

    @property
    def mode(self) -> str:
        return self.trace.mode

    @property
    def answer(self) -> int | None:
        return self.trace.answer.value if self.trace.answer else None

    @property
    def answer_raw(self) -> str | None:
        return self.trace.answer.raw if self.trace.answer else None

    @property
    def tokens(self) -> int:
        return self.trace.tokens

    @property
    def tool_calls(self) -> int:
        return self.trace.tool_calls

    @property
    def tool_statuses(self) -> tuple[str, ...]:
        return self.trace.tool_statuses

    @property
    def finish(self) -> str:
        return self.trace.finish

    @property
    def started(self) -> float:
        return self.trace.started

    @property
    def seconds(self) -> float:
        return self.trace.seconds

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": STORE_SCHEMA, "trace_schema": SCHEMA_VERSION, "kind": "sample", "correct": self.correct,
            "trace": self.trace.to_dict(with_tokens=bool(self.trace.token_ids)),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SampleRecord:
        return cls(trace=Trace.from_dict(d["trace"]), correct=bool(d["correct"]))


@dataclass(frozen=True)
class ProblemRecord:
    """One finished problem: what the agent answered and how it got there."""

    problem: Problem
    answer: int | None
    correct: bool | None
    tally: tuple[tuple[int, float, int], ...]
    stop_reason: str
    seconds: float
    samples: int  # samples stored for this problem
    position: int = 0  # order in which problems finished (Kaggle: order served)
    time_budget: float | None = None  # Kaggle: seconds the scheduler gave this problem

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": STORE_SCHEMA, "kind": "problem", "problem_id": self.problem.id,
            "problem": self.problem.to_dict(), "answer": self.answer, "correct": self.correct,
            "tally": [list(t) for t in self.tally], "stop_reason": self.stop_reason,
            "seconds": self.seconds, "samples": self.samples, "position": self.position,
            "time_budget": self.time_budget,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProblemRecord:
        return cls(
            problem=Problem.from_dict(d["problem"]), answer=d.get("answer"), correct=d.get("correct"),
            tally=tuple((int(a), float(w), int(c)) for a, w, c in d.get("tally", ())),
            stop_reason=d["stop_reason"], seconds=float(d["seconds"]), samples=int(d["samples"]),
            position=int(d.get("position", 0)), time_budget=d.get("time_budget"),
        )


def sample_record(problem: Problem, trace: Trace) -> SampleRecord:
    """Grade a trace against the problem's reference (the one scoring path) into a record."""
    from agent.answers import is_correct

    return SampleRecord(trace=trace, correct=is_correct(trace.answer, problem.answer, problem.modulus))


def problem_record(result: Result, samples: int, position: int, time_budget: float | None = None) -> ProblemRecord:
    return ProblemRecord(
        problem=result.problem, answer=result.answer, correct=result.correct, tally=result.vote.tally,
        stop_reason=result.stop_reason, seconds=result.seconds, samples=samples, position=position,
        time_budget=time_budget,
    )


@dataclass
class RunData:
    """Everything read back from a run folder."""

    manifest: dict[str, Any]
    samples: dict[str, dict[int, SampleRecord]] = field(default_factory=dict)  # problem id -> index -> record
    problems: dict[str, ProblemRecord] = field(default_factory=dict)
    torn_tail: bool = False

    def traces(self, problem_id: str) -> list[Trace]:
        return [r.trace for _, r in sorted(self.samples.get(problem_id, {}).items())]

    def all_samples(self) -> list[SampleRecord]:
        return [r for pid in self.samples for _, r in sorted(self.samples[pid].items())]

    def errored(self, problem_id: str) -> list[int]:
        """Indices of the problem's stored samples that ended in "error"."""
        return sorted(i for i, r in self.samples.get(problem_id, {}).items() if r.finish == "error")


def _parse_lines(path: Path) -> tuple[list[dict[str, Any]], int, bool]:
    """(records, byte length of the good prefix, whether a torn tail was dropped).

    The tail after the last newline is a torn write. A bad line that is the last line is torn
    too (e.g. zeros after a power cut); a bad line followed by good ones is corruption.
    """
    data = path.read_bytes() if path.exists() else b""
    *complete, tail = data.split(b"\n")
    records: list[dict[str, Any]] = []
    pos = 0
    for n, raw in enumerate(complete, 1):
        try:
            rec = json.loads(raw)
            ok = isinstance(rec, dict) and "kind" in rec
        except (json.JSONDecodeError, UnicodeDecodeError):
            ok = False
        if not ok:
            if n == len(complete) and not tail.strip():
                return records, pos, True
            raise UserError(f"{path} line {n}: corrupt record (not a JSON record); the run store is damaged")
        records.append(rec)
        pos += len(raw) + 1
    return records, pos, bool(tail)


def read_run(run_dir: str | Path) -> RunData:
    """Read a run folder; `UserError` when it is not one."""
    run_dir = Path(run_dir)
    mpath = run_dir / MANIFEST
    if not mpath.exists():
        raise UserError(f"{run_dir}: not a run folder (no {MANIFEST})")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{mpath} line {e.lineno}: not valid JSON ({e.msg})") from None
    recs, _, torn = _parse_lines(run_dir / RECORDS)
    data = RunData(manifest=manifest, torn_tail=torn)
    for d in recs:
        if d.get("schema", 0) > STORE_SCHEMA:
            raise UserError(f"{run_dir}: written by a newer tirmath (store schema {d['schema']})")
        if d["kind"] == "sample":  # a retried sample supersedes its "error" record
            r = SampleRecord.from_dict(d)
            held = data.samples.setdefault(r.problem_id, {})
            if r.index not in held or held[r.index].finish == "error":
                held[r.index] = r
        elif d["kind"] == "problem":  # a problem re-run to retry its errors: the later record counts
            p = ProblemRecord.from_dict(d)
            data.problems[p.problem.id] = p
    return data


class RunStore:
    """Open (create or resume) a run folder for appending.

    `config` is the run's identity: resuming with a different one is a `UserError` naming the
    fields that differ. `meta` is stored but not compared (package version, start time, servers).
    """

    def __init__(self, run_dir: str | Path, config: dict[str, Any], meta: dict[str, Any] | None = None):
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        mpath = self.dir / MANIFEST
        if mpath.exists():
            old = read_run(self.dir).manifest.get("config", {})
            config = json.loads(json.dumps(config))  # tuples -> lists, as stored
            diff = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
            if diff:
                shown = "; ".join(f"{k}: stored {old.get(k)!r}, now {config.get(k)!r}" for k in diff[:4])
                raise UserError(f"{self.dir} holds a run with another config ({shown}); use a new --out folder")
        else:
            manifest = {"schema": STORE_SCHEMA, "created": time.time(), "config": config, **(meta or {})}
            tmp = mpath.with_suffix(".tmp")
            tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
            os.replace(tmp, mpath)
        self.data = read_run(self.dir)
        _, good, torn = _parse_lines(self.dir / RECORDS)
        self._fd = os.open(self.dir / RECORDS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if torn:
            os.ftruncate(self._fd, good)
        self._end = good  # byte length of the good records: a failed write is cut back to it

    def _append(self, d: dict[str, Any]) -> None:
        """Write one record with one `os.write`, then fsync; on any failure leave no partial line."""
        line = json.dumps(d, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"
        try:
            n = os.write(self._fd, line)
            if n != len(line):  # a short write: the disk filled up (or a file size limit) mid-line
                raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (only {n} of {len(line)} bytes written)")
            os.fsync(self._fd)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._end)
            raise StoreWriteError(
                f"cannot write to {self.dir / RECORDS}: {e.strerror or e} (the record was not kept; everything "
                "before it is stored: free space and run the same command again to resume)") from None
        self._end += n

    def has_sample(self, problem_id: str, index: int) -> bool:
        return index in self.data.samples.get(problem_id, {})

    def add_sample(self, rec: SampleRecord) -> bool:
        """Append a sample; False (and nothing written) when (problem, index) is already stored,
        unless the stored one ended in "error" (a retry supersedes it)."""
        held = self.data.samples.get(rec.problem_id, {}).get(rec.index)
        if held is not None and held.finish != "error":
            return False
        self._append(rec.to_dict())
        self.data.samples.setdefault(rec.problem_id, {})[rec.index] = rec
        return True

    def add_problem(self, rec: ProblemRecord, replace: bool = False) -> bool:
        """Append a problem record; a second one only with `replace` (a re-run that retried errors)."""
        if rec.problem.id in self.data.problems and not replace:
            return False
        self._append(rec.to_dict())
        self.data.problems[rec.problem.id] = rec
        return True

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_records(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Write records as JSONL in one go (tests and tools; runs use `RunStore`)."""
    with path.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
