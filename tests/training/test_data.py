"""Data builders: shortest-correct selection, pass-rate filter, tool-output label masks, DPO pairs,
GRPO rows, and reading a real run store (evals.store)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.answers import extract_answer
from agent.errors import UserError
from agent.types import Problem, Step, Trace
from training.data import (
    build_dpo_dataset,
    build_grpo_dataset,
    build_sft_dataset,
    load_candidates,
    select_dpo,
    select_sft,
    tokenize_candidate,
)
from training.recipe import Recipe

P1 = Problem(id="p1", text="What is 6*7?", answer="42")
P2 = Problem(id="p2", text="What is 2+3?", answer="5")


def trace(p: Problem, index: int, steps: list[Step], mode: str = "cot") -> Trace:
    text = "".join(s.text for s in steps)
    return Trace(problem_id=p.id, index=index, seed=index, mode=mode, steps=tuple(steps),  # type: ignore[arg-type]
                 answer=extract_answer(text, steps), finish="answer", tokens=len(text.split()), tool_calls=0)


def tir_steps(answer: int, pad: str = "") -> list[Step]:
    return [Step("text", f"Let me compute.{pad}\n"), Step("code", "```python\nprint(6*7)\n```\n"),
            Step("output", "```output\n42\n```\n", status="ok"), Step("text", f"So \\boxed{{{answer}}}.")]


def traces_file(tmp_path: Path) -> Path:
    rows = [
        trace(P1, 0, tir_steps(42), "tir"),
        trace(P1, 1, tir_steps(42, " this is a much longer way of saying the same thing" * 4), "tir"),
        trace(P1, 2, [Step("text", "I guess \\boxed{41}.")]),
        trace(P2, 0, [Step("text", "Adding two and three gives \\boxed{5}.")]),
        trace(P2, 1, [Step("text", "2+3 = \\boxed{5}")]),
    ]
    probs = {P1.id: P1, P2.id: P2}
    path = tmp_path / "traces.jsonl"
    path.write_text("".join(json.dumps({**t.to_dict(), "problem": probs[t.problem_id].to_dict()}) + "\n"
                            for t in rows))
    return path


def test_shortest_correct_and_pass_rate_filter(tmp_path):
    cands = load_candidates(str(traces_file(tmp_path)))
    assert len(cands) == 5 and [c.correct for c in cands] == [True, True, False, True, True]
    best = {c.problem.id: c for c in select_sft(cands)}
    assert "much longer" not in best["p1"].text and best["p1"].mode == "tir"
    assert best["p2"].text == "2+3 = \\boxed{5}"  # the shorter of the two
    # p1 was solved 2/3 of the time, p2 always: a "hard problems only" filter keeps p1
    hard = select_sft(cands, max_pass=0.9)
    assert [c.problem.id for c in hard] == ["p1"]


def test_tool_output_tokens_get_label_minus_100(tmp_path, smol_tokenizer):
    cands = load_candidates(str(traces_file(tmp_path)))
    c = select_sft(cands, max_pass=0.9)[0]
    row = tokenize_candidate(smol_tokenizer, c, "small")
    ids, labels = row["input_ids"], row["labels"]
    assert len(ids) == len(labels) and ids[-1] == smol_tokenizer.eos_token_id and labels[-1] == ids[-1]
    trained = smol_tokenizer.decode([i for i, lab in zip(ids, labels, strict=True) if lab != -100])
    assert "```python\nprint(6*7)\n```" in trained and "\\boxed{42}" in trained
    assert "```output" not in trained and "What is 6*7?" not in trained
    masked_tail = smol_tokenizer.decode([i for i, lab in zip(ids, labels, strict=True) if lab == -100][-8:])
    assert "```output\n42\n```" in masked_tail


def test_messages_rows_mark_tool_output(data_dir, smol_tokenizer):
    cands = load_candidates(str(data_dir / "tir_examples.jsonl"))
    with_msgs = [c for c in cands if any(not k for _, k in c.segments)]
    assert with_msgs, "ToRA examples carry ```output blocks"
    row = tokenize_candidate(smol_tokenizer, with_msgs[0], "small")
    trained = smol_tokenizer.decode([i for i, lab in zip(row["input_ids"], row["labels"], strict=True) if lab != -100])
    assert "```output" not in trained and "```python" in trained


def test_sft_dataset_from_shared_sample(data_dir, smol_tokenizer):
    r = Recipe(kind="sft", data="sft_traces_sample", max_length=4096, max_rows=3)
    ds = build_sft_dataset(r, smol_tokenizer, "small")
    assert len(ds) == 3 and set(ds.column_names) == {"input_ids", "labels"}
    with pytest.raises(UserError, match="no usable SFT rows"):
        build_sft_dataset(Recipe(kind="sft", data="sft_traces_sample", max_length=10), smol_tokenizer, "small")


def test_dpo_pairs(tmp_path):
    cands = load_candidates(str(traces_file(tmp_path)))
    pairs = select_dpo(cands, min_ratio=3.0, max_sim=0.95)
    kinds = sorted((c.problem.id, r.correct) for c, r in pairs)
    # p1: short correct vs wrong, and vs the much longer correct one; p2: no wrong, only 2x longer
    assert kinds == [("p1", False), ("p1", True)]
    assert all(len(c.text) < len(r.text) or not r.correct for c, r in pairs)
    # the similarity filter drops the long correct one (shares a third of its words), not the wrong one
    assert [r.correct for _, r in select_dpo(cands, min_ratio=3.0, max_sim=0.2)] == [False]
    ds = build_dpo_dataset(Recipe(kind="dpo", data=str(traces_file(tmp_path)), dpo_min_length_ratio=3.0), "small")
    assert set(ds.column_names) == {"prompt", "chosen", "rejected"} and len(ds) == 2
    assert ds[0]["prompt"][-1]["role"] == "user" and ds[0]["chosen"][0]["role"] == "assistant"


def test_grpo_rows_integer_answers_only(tmp_path):
    path = tmp_path / "g.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"id": "a", "problem": "1+1?", "answer": "2"},
        {"id": "b", "problem": "half?", "answer": "\\frac{1}{2}"},
        {"id": "c", "problem": "ten?", "answer": "10"},
    ]) + "\n")
    ds, by_prompt = build_grpo_dataset(Recipe(kind="grpo", data=str(path), tir=True), "small")
    assert ds["problem_id"] == ["a", "c"] and ds["answer"] == ["2", "10"]
    assert "Python" in ds[0]["prompt"][-1]["content"]  # the agent's TIR prompt
    assert {p.id for p in by_prompt.values()} == {"a", "c"}
    ds, _ = build_grpo_dataset(Recipe(kind="grpo", data="train_grpo", max_rows=5), "small")
    assert len(ds) == 5


def test_run_store_source(tmp_path):
    from agent.types import Result, Vote
    from evals.store import RunStore, problem_record, sample_record

    with RunStore(tmp_path / "run", {"model": "x"}) as store:
        for p, ts in ((P1, [trace(P1, 0, tir_steps(42), "tir"), trace(P1, 1, [Step("text", "\\boxed{1}")])]),
                      (P2, [trace(P2, 0, [Step("text", "\\boxed{5}")])])):
            for t in ts:
                store.add_sample(sample_record(p, t))
            store.add_problem(problem_record(Result(p, Vote(None), tuple(ts), "all_done", 1.0), len(ts), 0))
    cands = load_candidates(str(tmp_path / "run"))
    assert sorted((c.problem.id, c.correct) for c in cands) == [("p1", False), ("p1", True), ("p2", True)]
    assert {c.problem.text for c in cands} == {P1.text, P2.text}


def test_trace_without_problem_is_an_error(tmp_path):
    t = trace(P1, 0, [Step("text", "\\boxed{42}")])
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(t.to_dict()) + "\n")
    with pytest.raises(UserError, match="line 1.*'problems'"):
        load_candidates(str(path))
    probs = tmp_path / "probs.jsonl"
    probs.write_text(json.dumps({"id": "p1", "problem": P1.text, "answer": "42"}) + "\n")
    assert load_candidates(str(path), str(probs))[0].correct
