"""Typed records that flow through tirmath: Problem -> Trace[] -> Vote -> Result.

Frozen dataclasses with `to_dict` / `from_dict` for JSONL storage, stamped with
`SCHEMA_VERSION`. This module holds data only: no extraction, voting or I/O logic.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

SCHEMA_VERSION = 1

Mode = Literal["cot", "tir"]
StepKind = Literal["text", "code", "output"]
AnswerSource = Literal["boxed", "code_output", "final_answer"]
# Why a sample ended:
#   "answer"     boxed answer given after </think> (Fast-Math style stop) or end of sequence
#   "eos"        the model ended without a boxed answer
#   "length"     the per-sample token budget ran out
#   "tool_limit" the per-sample tool-call cap was reached
#   "time"       the problem's wall-time budget ran out
#   "aborted"    the problem was settled early (vote) and this sample was cancelled
#   "context"    the model's context window is full (prompt + generated + tool output)
#   "error"      this sample failed (a tool or format failure; message in Trace.error)
Finish = Literal["answer", "eos", "length", "context", "tool_limit", "time", "aborted", "error"]


@dataclass(frozen=True)
class Problem:
    """One problem. `answer` is the reference answer as a string (may be LaTeX), or None."""

    id: str
    text: str
    answer: str | None = None
    source: str = ""
    modulus: int | None = None  # e.g. 1000 for AIMO (answers 0..999); None: no reduction

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Problem:
        return cls(
            id=str(d["id"]),
            text=d["text"],
            answer=d.get("answer"),
            source=d.get("source", ""),
            modulus=d.get("modulus"),
        )


@dataclass(frozen=True)
class Answer:
    """An extracted answer. `value` is the normalised integer, or None when not an integer."""

    raw: str
    value: int | None
    source: AnswerSource

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Answer:
        return cls(raw=d["raw"], value=d.get("value"), source=d["source"])


@dataclass(frozen=True)
class Step:
    """A piece of a completion: model text, a code cell the model wrote, or the tool's output.

    For kind == "output", `status` is the sandbox status ("ok", "error", "timeout", ...) and
    `seconds` the cell's wall time. The concatenation of all steps' `text` is the completion.
    """

    kind: StepKind
    text: str
    status: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Step:
        return cls(kind=d["kind"], text=d["text"], status=d.get("status"), seconds=d.get("seconds", 0.0))


@dataclass(frozen=True)
class Trace:
    """One sample's full record.

    `tokens` counts tokens the model generated (tool-output tokens excluded); `prompt_tokens`
    the rendered prompt. `token_ids` / `mask` (same length, completion only, mask 0 for tool
    output tokens) are filled only when the rollout was asked to record them (training).
    `started` is seconds after the problem started; `seconds` the sample's wall time.
    """

    problem_id: str
    index: int
    seed: int
    mode: Mode
    steps: tuple[Step, ...]
    answer: Answer | None
    finish: Finish
    tokens: int
    tool_calls: int
    started: float = 0.0
    seconds: float = 0.0
    prompt_tokens: int = 0
    error: str | None = None
    token_ids: tuple[int, ...] = ()
    mask: tuple[int, ...] = ()
    mean_entropy: float | None = None  # mean top-k entropy of generated tokens (when logprobs were asked)

    @property
    def completion(self) -> str:
        return "".join(s.text for s in self.steps)

    @property
    def tool_statuses(self) -> tuple[str, ...]:
        return tuple(s.status or "" for s in self.steps if s.kind == "output")

    def to_dict(self, with_tokens: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schema": SCHEMA_VERSION,
            "problem_id": self.problem_id,
            "index": self.index,
            "seed": self.seed,
            "mode": self.mode,
            "steps": [s.to_dict() for s in self.steps],
            "answer": self.answer.to_dict() if self.answer else None,
            "finish": self.finish,
            "tokens": self.tokens,
            "tool_calls": self.tool_calls,
            "started": self.started,
            "seconds": self.seconds,
            "prompt_tokens": self.prompt_tokens,
            "error": self.error,
        }
        if self.mean_entropy is not None:
            d["mean_entropy"] = self.mean_entropy
        if with_tokens:
            d["token_ids"] = list(self.token_ids)
            d["mask"] = list(self.mask)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Trace:
        return cls(
            problem_id=str(d["problem_id"]),
            index=int(d["index"]),
            seed=int(d["seed"]),
            mode=d["mode"],
            steps=tuple(Step.from_dict(s) for s in d["steps"]),
            answer=Answer.from_dict(d["answer"]) if d.get("answer") else None,
            finish=d["finish"],
            tokens=int(d["tokens"]),
            tool_calls=int(d["tool_calls"]),
            started=float(d.get("started", 0.0)),
            seconds=float(d.get("seconds", 0.0)),
            prompt_tokens=int(d.get("prompt_tokens", 0)),
            error=d.get("error"),
            token_ids=tuple(d.get("token_ids", ())),
            mask=tuple(d.get("mask", ())),
            mean_entropy=d.get("mean_entropy"),
        )


@dataclass(frozen=True)
class Vote:
    """The outcome of voting: the winning integer (or None) and the weighted tally, best first."""

    answer: int | None
    tally: tuple[tuple[int, float, int], ...] = ()  # (answer, total weight, count)
    voters: int = 0  # samples that had an integer answer

    def to_dict(self) -> dict[str, Any]:
        return {"answer": self.answer, "tally": [list(t) for t in self.tally], "voters": self.voters}


@dataclass(frozen=True)
class Result:
    """What `solve` returns for one problem."""

    problem: Problem
    vote: Vote
    traces: tuple[Trace, ...]
    stop_reason: str  # "all_done", or the policy's reason for stopping early, or "time"
    seconds: float
    correct: bool | None = None  # None when the problem has no reference answer
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def answer(self) -> int | None:
        return self.vote.answer

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "problem": self.problem.to_dict(),
            "answer": self.answer,
            "correct": self.correct,
            "vote": self.vote.to_dict(),
            "stop_reason": self.stop_reason,
            "seconds": self.seconds,
            "samples": [
                {
                    "index": t.index,
                    "mode": t.mode,
                    "answer": t.answer.value if t.answer else None,
                    "answer_raw": t.answer.raw if t.answer else None,
                    "answer_source": t.answer.source if t.answer else None,
                    "tokens": t.tokens,
                    "tool_calls": t.tool_calls,
                    "tool_statuses": list(t.tool_statuses),
                    "finish": t.finish,
                    "seconds": round(t.seconds, 3),
                    "mean_entropy": t.mean_entropy,
                }
                for t in self.traces
            ],
            "meta": self.meta,
        }
