"""gen-tir filters (hand-made traces) and the dataset it writes (loaded back with `datasets`)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import datasets

from agent.types import Problem
from evals.gentir import FilterConfig, build_dataset, select
from evals.store import read_run, sample_record
from tests.evals.helpers import make_run, tir_trace

P = Problem("p1", "What is 6*7?", "42")


def recs(*traces):  # type: ignore[no-untyped-def]
    return [sample_record(P, t) for t in traces]


def test_each_filter_drops_its_case() -> None:
    rs = recs(
        tir_trace("p1", 0, 42, words="alpha beta gamma delta epsilon zeta", tokens=300),  # kept
        tir_trace("p1", 1, 41, tokens=100),  # wrong
        tir_trace("p1", 2, 42, statuses=(), tokens=100),  # no code ran
        tir_trace("p1", 3, 42, statuses=("ok", "crashed"), tokens=100),  # crashed cell
        tir_trace("p1", 4, 42, statuses=("error", "ok"), tokens=100),  # python error
        tir_trace("p1", 5, 42, tokens=100, finish="length"),  # cut at the cap
        tir_trace("p1", 6, 42, tokens=5, words="tiny"),  # too short
        tir_trace("p1", 7, 42, tokens=99999),  # too long
    )
    dropped: Counter[str] = Counter()
    kept = select(rs, FilterConfig(min_tokens=10, max_tokens=5000), dropped)
    assert [r.index for r in kept] == [0]
    assert dropped == Counter(wrong=1, no_code=1, bad_cell=2, unfinished=1, too_short=1, too_long=1)
    dropped.clear()
    kept = select(rs, FilterConfig(allow_cell_errors=True, keep_incorrect=True, dedup=1.1), dropped)
    assert sorted(r.index for r in kept)[:3] == [0, 1, 4] and 3 not in [r.index for r in kept]


def test_near_duplicates_and_k_shortest_first() -> None:
    base = ("we use the formula for the sum of an arithmetic series with first term one and last term n "
            "then we multiply by the number of terms and divide by two which gives the closed form that we "
            "check numerically for small cases before trusting it")
    rs = recs(
        tir_trace("p1", 0, 42, words=base, tokens=500),
        tir_trace("p1", 1, 42, words=base + " indeed", tokens=400),  # near-duplicate of 0, shorter: kept
        tir_trace("p1", 2, 42, words="factor the polynomial and check each root by direct substitution", tokens=450),
        tir_trace("p1", 3, 42, words="a completely different idea using modular arithmetic and residues mod seven",
                  tokens=480),
    )
    dropped: Counter[str] = Counter()
    kept = select(rs, FilterConfig(keep=2), dropped)
    assert [r.index for r in kept] == [1, 2]
    assert dropped == Counter(duplicate=1, over_k=1)


def test_dataset_schema_and_messages(tmp_path: Path) -> None:
    q = Problem("p2", "What is 2+3?", "5")
    make_run(tmp_path / "run", [P, q], {"p1": [tir_trace("p1", 0, 42, statuses=("ok", "ok")),
                                               tir_trace("p1", 1, 40)],
                                        "p2": [tir_trace("p2", 0, 4)]})
    stats = build_dataset(read_run(tmp_path / "run"), FilterConfig(), tmp_path / "ds")
    assert (stats.kept, stats.samples, stats.problems_with_data) == (1, 3, 1)
    ds = datasets.load_from_disk(str(tmp_path / "ds"))
    assert len(ds) == 1
    row = ds[0]
    assert row["id"] == "p1#0" and row["answer"] == "42" and row["predicted"] == 42
    assert row["problem_pass_rate"] == 0.5 and row["tool_statuses"] == ["ok", "ok"]
    roles = [m["role"] for m in row["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert "What is 6*7?" in row["messages"][0]["content"]
    assert all(m["content"].startswith("```output") for m in row["messages"] if m["role"] == "tool")
    assert "".join(m["content"] for m in row["messages"][1:]) == row["completion"]
    empty = build_dataset(read_run(tmp_path / "run"), FilterConfig(min_tokens=10**6), tmp_path / "empty")
    assert empty.kept == 0 and len(datasets.load_from_disk(str(tmp_path / "empty"))) == 0
