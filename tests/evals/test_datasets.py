"""Problem loading: shared files by short name, JSONL/CSV/Parquet/HF folders, field maps, filters, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.datasets import FieldMap, find_problem, load_problems
from agent.errors import UserError


def test_short_names_load_the_shared_files() -> None:
    probs = load_problems("aime2025")
    assert len(probs) == 30
    assert probs[0].id == "2025-I-1" and probs[0].answer == "70"
    assert len(load_problems("math500", integer_only=True)) == 312  # README: 312 integer answers


def test_filters_limit_ids_and_modulus() -> None:
    probs = load_problems("aime2024", limit=3, modulus=1000)
    assert [p.modulus for p in probs] == [1000, 1000, 1000]
    picked = load_problems("aime2025", ids=["2025-II-3", "2025-I-1"])
    assert [p.id for p in picked] == ["2025-II-3", "2025-I-1"]
    with pytest.raises(UserError, match="unknown id.*nope.*valid ids include 2025-I-1"):
        load_problems("aime2025", ids=["nope"])


def test_find_problem_and_unknown_dataset() -> None:
    assert find_problem("aime2025", "2025-I-2").answer == "588"
    with pytest.raises(UserError, match="no problem 'zz'.*2025-I-1"):
        find_problem("aime2025", "zz")
    with pytest.raises(UserError, match="unknown dataset 'not_a_set'.*aime2025"):
        load_problems("not_a_set")


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_missing_answer_names_file_and_line(tmp_path: Path) -> None:
    f = _write_jsonl(tmp_path / "bad.jsonl", [
        {"id": "a", "problem": "1+1?", "answer": "2"},
        {"id": "b", "problem": "2+2?", "answer": "4"},
        {"id": "c", "problem": "3+3?"},
    ])
    with pytest.raises(UserError, match=r"bad.jsonl line 3: no answer \(field 'answer'\)"):
        load_problems(str(f))


def test_duplicate_id_and_empty_problem(tmp_path: Path) -> None:
    f = _write_jsonl(tmp_path / "dup.jsonl", [{"id": "a", "problem": "x", "answer": "1"}] * 2)
    with pytest.raises(UserError, match="dup.jsonl line 2: duplicate id 'a' .first on line 1."):
        load_problems(str(f))
    g = _write_jsonl(tmp_path / "empty.jsonl", [{"id": "a", "problem": "  ", "answer": "1"}])
    with pytest.raises(UserError, match="empty.jsonl line 1: no problem text"):
        load_problems(str(g))
    h = tmp_path / "broken.jsonl"
    h.write_text('{"id": "a", "problem": "x", "answer": "1"}\n{"id": \n')
    with pytest.raises(UserError, match="broken.jsonl line 2: not valid JSON"):
        load_problems(str(h))


def test_csv_with_field_map_and_integer_filter(tmp_path: Path) -> None:
    f = tmp_path / "ref.csv"
    f.write_text("key,question,solution_value\nq1,What is 2+3?,5\nq2,What is 1/2?,\\frac{1}{2}\n")
    probs = load_problems(str(f), fields=FieldMap(problem="question", answer="solution_value", id="key"))
    assert [(p.id, p.answer) for p in probs] == [("q1", "5"), ("q2", "\\frac{1}{2}")]
    ints = load_problems(str(f), fields=FieldMap(problem="question", answer="solution_value", id="key"),
                         integer_only=True)
    assert [p.id for p in ints] == ["q1"]
    bad = tmp_path / "bad.csv"
    bad.write_text("id,problem,answer\na,x,1\nb,,2\n")
    with pytest.raises(UserError, match="bad.csv line 3: no problem text"):
        load_problems(str(bad))


def test_parquet_and_hf_folder(tmp_path: Path) -> None:
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"id": "x1", "problem": "p", "answer": 7}, {"id": "x2", "problem": "q", "answer": 8}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "set.parquet")
    assert [p.answer for p in load_problems(str(tmp_path / "set.parquet"))] == ["7", "8"]
    datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "hf"))
    assert [p.id for p in load_problems(str(tmp_path / "hf"))] == ["x1", "x2"]
    with pytest.raises(UserError, match="no split 'train'"):
        load_problems(str(tmp_path / "hf"), split="train")


def test_missing_file_is_named() -> None:
    with pytest.raises(UserError, match="nowhere/set.jsonl: no such file"):
        load_problems("nowhere/set.jsonl")
