"""Run store: append, read back, torn tails, corruption, no duplicates, config identity on resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import UserError
from agent.types import Answer, Problem, Result, Step, Trace, Vote
from evals.store import RECORDS, RunStore, problem_record, read_run, sample_record

P = Problem(id="p1", text="2+2?", answer="4")


def trace(i: int, value: int | None, tokens: int = 100, mode: str = "cot") -> Trace:
    ans = Answer(str(value), value, "boxed") if value is not None else None
    steps = (Step("text", "x" * 10), Step("code", "```python\nprint(4)\n```\n"), Step("output", "```output\n4\n```\n", "ok"))
    return Trace("p1", i, 1000 + i, mode, steps, ans, "answer", tokens, 1)  # type: ignore[arg-type]


def test_round_trip_and_grading(tmp_path: Path) -> None:
    with RunStore(tmp_path, {"samples": 2}) as st:
        assert st.add_sample(sample_record(P, trace(0, 4)))
        assert st.add_sample(sample_record(P, trace(1, 5)))
        assert not st.add_sample(sample_record(P, trace(1, 5)))  # already stored: not written twice
        res = Result(P, Vote(4, ((4, 1.0, 1), (5, 1.0, 1)), 2), (), "all_done", 1.5, True)
        st.add_problem(problem_record(res, 2, 0))
    data = read_run(tmp_path)
    recs = data.all_samples()
    assert [(r.index, r.answer, r.correct) for r in recs] == [(0, 4, True), (1, 5, False)]
    assert recs[0].trace == trace(0, 4)
    assert recs[0].tool_statuses == ("ok",)
    assert data.problems["p1"].tally == ((4, 1.0, 1), (5, 1.0, 1))
    assert (tmp_path / RECORDS).read_text().count("\n") == 3


def test_torn_tail_is_ignored_and_cut_before_next_append(tmp_path: Path) -> None:
    with RunStore(tmp_path, {}) as st:
        st.add_sample(sample_record(P, trace(0, 4)))
    with (tmp_path / RECORDS).open("ab") as f:
        f.write(b'{"schema":1,"kind":"sample","problem_id":"p1","ind')  # killed mid-write
    data = read_run(tmp_path)
    assert data.torn_tail and len(data.all_samples()) == 1
    with RunStore(tmp_path, {}) as st:
        st.add_sample(sample_record(P, trace(1, 4)))
    data = read_run(tmp_path)
    assert not data.torn_tail
    assert [r.index for r in data.all_samples()] == [0, 1]


def test_corrupt_middle_line_is_an_error(tmp_path: Path) -> None:
    with RunStore(tmp_path, {}) as st:
        st.add_sample(sample_record(P, trace(0, 4)))
    text = (tmp_path / RECORDS).read_text()
    (tmp_path / RECORDS).write_text("garbage\n" + text)
    with pytest.raises(UserError, match="records.jsonl line 1: corrupt record"):
        read_run(tmp_path)


def test_other_config_is_refused(tmp_path: Path) -> None:
    RunStore(tmp_path, {"samples": 2, "seed": 0}).close()
    RunStore(tmp_path, {"samples": 2, "seed": 0}).close()  # same config resumes
    with pytest.raises(UserError, match="another config .samples: stored 2, now 4"):
        RunStore(tmp_path, {"samples": 4, "seed": 0})
    with pytest.raises(UserError, match="not a run folder"):
        read_run(tmp_path / "nothing")
