"""Shared helpers for evals tests: build small run folders from hand-made traces."""

from __future__ import annotations

from pathlib import Path

from agent.types import Answer, Problem, Result, Step, Trace, Vote
from evals.store import RunStore, problem_record, sample_record


def tir_trace(pid: str, index: int, value: int | None, statuses: tuple[str, ...] = ("ok",), words: str = "",
              tokens: int = 100, finish: str = "answer") -> Trace:
    steps: list[Step] = [Step("text", f"Let me compute {words}.\n")]
    for s in statuses:
        steps += [Step("code", f"```python\nprint({value})\n```\n"), Step("output", f"```output\n{value}\n```\n", s)]
    steps.append(Step("text", f"So the answer is \\boxed{{{value}}}."))
    ans = Answer(str(value), value, "boxed") if value is not None else None
    return Trace(pid, index, 100 + index, "tir", tuple(steps), ans, finish, tokens, len(statuses))  # type: ignore[arg-type]


def make_run(run_dir: Path, problems: list[Problem], traces: dict[str, list[Trace]],
             config: dict | None = None) -> None:
    meta = {"problems": [p.id for p in problems], "problem_set": [p.to_dict() for p in problems]}
    with RunStore(run_dir, config or {"dataset": "hand", "model": "fake", "samples": 2, "tir_ratio": 1.0}, meta) as st:
        for p in problems:
            for t in traces.get(p.id, []):
                st.add_sample(sample_record(p, t))
            vals = [t.answer.value for t in traces.get(p.id, []) if t.answer]
            top = max(vals, key=vals.count) if vals else None  # ties: first seen
            tally = tuple((v, float(vals.count(v)), vals.count(v)) for v in sorted(set(vals)))
            res = Result(p, Vote(top, tally, len(vals)), (), "all_done", 1.0,
                         correct=top is not None and str(top) == p.answer)
            st.add_problem(problem_record(res, len(traces.get(p.id, [])), len(st.data.problems)))
