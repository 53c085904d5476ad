"""A stored sample holds each fact once (its trace and its verdict); lines written by older tirmath,
with the summary copied beside the trace, still load, and their summary comes from the trace."""

from __future__ import annotations

import json
from pathlib import Path

from agent.types import Answer, Problem, Step, Trace
from evals.store import RunStore, read_run, sample_record


def _trace(pid: str, i: int) -> Trace:
    return Trace(pid, i, 7, "tir", (Step("code", "```python\nprint(5)\n```\n"), Step("output", "5", status="ok")),
                 Answer("5", 5, "boxed"), "answer", 120, 1, started=0.5, seconds=2.0)


def test_new_line_holds_trace_and_verdict_only(tmp_path: Path) -> None:
    with RunStore(tmp_path, {"samples": 1}) as store:
        store.add_sample(sample_record(Problem("p", "x", "5"), _trace("p", 0)))
    line = json.loads((tmp_path / "records.jsonl").read_text().splitlines()[0])
    assert set(line) == {"schema", "trace_schema", "kind", "correct", "trace"}
    rec = read_run(tmp_path).samples["p"][0]
    assert (rec.problem_id, rec.index, rec.answer, rec.tokens, rec.tool_statuses, rec.correct) == ("p", 0, 5, 120,
                                                                                                  ("ok",), True)


def test_older_lines_with_copied_summary_still_load(tmp_path: Path) -> None:
    t = _trace("old", 3)
    old = {"schema": 1, "trace_schema": 1, "kind": "sample", "problem_id": "old", "index": 3, "seed": 7,
           "mode": "tir", "answer": 999, "answer_raw": "stale copy", "correct": False, "tokens": 1,
           "tool_calls": 0, "tool_statuses": [], "finish": "length", "started": 0.0, "seconds": 0.0,
           "trace": t.to_dict()}
    (tmp_path / "manifest.json").write_text(json.dumps({"schema": 1, "config": {}}))
    (tmp_path / "records.jsonl").write_text(json.dumps(old) + "\n")
    rec = read_run(tmp_path).samples["old"][3]
    assert rec.answer == 5 and rec.finish == "answer" and rec.tokens == 120 and rec.correct is False
