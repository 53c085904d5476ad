"""The difficulty predictor: training (light TF-IDF kind on the recorded R1-1.5B file; the HF kind
with a tiny random-weight encoder built here), saving and loading, and the scheduler that uses
it live (eval --kaggle over the real runner and solve, scripted backend) and in replay."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agent.budget import make_scheduler
from agent.difficulty import load_predictor
from agent.errors import UserError
from agent.types import Problem
from training.difficulty import Example, TrainSettings, examples, fit_tfidf, spearman, train_difficulty

RECORDED = "recorded/aime1983-2024__deepseek-r1-distill-qwen-1.5b__n8.jsonl"


def _source_and_texts(data_dir: Path):  # type: ignore[no-untyped-def]
    from evals.replay import source_texts
    from evals.replay_sources import read_source

    src = str(data_dir / RECORDED)
    return read_source(src), source_texts(src, [str(data_dir / "aime_1983_2023.jsonl"), str(data_dir / "aime2024.jsonl")])


def test_tfidf_on_recorded_samples_beats_nothing_and_round_trips(data_dir: Path, tmp_path: Path) -> None:
    source, texts = _source_and_texts(data_dir)
    report = train_difficulty(source, texts, tmp_path / "p", TrainSettings())
    assert report.train_problems + report.heldout_problems == 596
    assert report.spearman > 0.2  # measured 0.36 (text length alone: 0.28)
    saved = json.loads((tmp_path / "p" / "report.json").read_text())
    assert saved["label"].startswith("mean generated tokens") and len(saved["heldout_ids"]) == report.heldout_problems
    pred = load_predictor(tmp_path / "p")
    held = [texts[i] for i in report.heldout_ids[:5]]
    assert np.all(pred.predict(held) > 0) and pred.typical_tokens == pytest.approx(report.typical_tokens)
    correct_only = examples(source, texts, "correct")
    assert len(correct_only) < 596  # problems with no correct sample are dropped


def test_spearman_and_loaded_equals_fitted(tmp_path: Path) -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    train = [Example(str(i), ("hard " * (i % 5 + 1)) + f"problem {i}", 1000.0 * (i % 5 + 1)) for i in range(30)]
    model = fit_tfidf(train)
    model.save(tmp_path / "m", {"heldout_ids": []})
    texts = ["hard hard hard hard problem", "hard problem"]
    assert np.allclose(load_predictor(tmp_path / "m").predict(texts), model.predict(texts))
    a, b = model.predict(texts)
    assert a > b


def _toy_predictor(tmp_path: Path) -> Path:
    train = [Example(str(i), ("hard " * 8 if i % 2 else "easy ") + f"question {i}", 8000.0 if i % 2 else 500.0)
             for i in range(40)]
    fit_tfidf(train).save(tmp_path / "toy", {"heldout_ids": []})
    return tmp_path / "toy"


def test_scheduler_gives_predicted_hard_problems_more(tmp_path: Path) -> None:
    folder = _toy_predictor(tmp_path)
    hard, easy = "hard " * 8 + "question", "easy question"
    s = make_scheduler(f"bank:predictor={folder}", 1000.0, 10)
    assert s.name == "bank+predictor"
    b_hard = s.budget_for(0, 10, 1000.0, hard)
    b_easy = s.budget_for(0, 10, 1000.0, easy)
    b_none = s.budget_for(0, 10, 1000.0)
    assert b_none == pytest.approx(100.0)
    assert b_easy < b_none < b_hard <= 200.0
    for bad in ("flat:predictor=" + str(folder), "bank:predictor=", "bank:predictor=/no/such", "bankpredictor=x"):
        with pytest.raises(UserError):
            make_scheduler(bad, 10.0, 2)


async def test_live_kaggle_run_budgets_from_the_predictor(tmp_path: Path) -> None:
    from evals.runner import RunConfig, open_store, run_problems
    from evals.store import read_run
    from tests.fakes import FakeBackend, FakePool

    folder = _toy_predictor(tmp_path)
    problems = [Problem("h", "hard " * 8 + "question", "42"), Problem("e", "easy question", "42")]
    from agent.config import RolloutConfig, SolveConfig

    cfg = RunConfig(solve=SolveConfig(samples=1, tir_ratio=0.0, rollout=RolloutConfig(max_tokens=50)), kaggle=True,
                    time_budget=200.0, scheduler=f"bank:predictor={folder}")
    store = open_store(str(tmp_path / "run"), problems, cfg, "test")
    try:
        await run_problems(problems, [FakeBackend(answers=[42])], FakePool(), cfg, store)
    finally:
        store.close()
    recs = {r.problem.id: r for r in read_run(tmp_path / "run").problems.values()}
    first = min(recs.values(), key=lambda r: r.position)
    share = 200.0 / 2
    assert first.time_budget is not None
    assert (first.time_budget > share) if first.problem.id == "h" else (first.time_budget < share)


def test_replay_kaggle_with_predictor(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from evals.replay import main

    source, texts = _source_and_texts(data_dir)
    train_difficulty(source, texts, tmp_path / "p", TrainSettings())
    argv = [str(data_dir / RECORDED), "--kaggle", "--heldout-of", str(tmp_path / "p"), "--orders", "2",
            "--problems", str(data_dir / "aime_1983_2023.jsonl"), "--problems", str(data_dir / "aime2024.jsonl"),
            "--scheduler", "bank", "--scheduler", f"bank:predictor={tmp_path / 'p'}", "--policy", "fixed", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    scheds = {r["scheduler"] for r in out["kaggle"]["rows"]}
    assert scheds == {"bank", f"bank:predictor={tmp_path / 'p'}"}
    assert any("held out by the predictor" in c for c in out["caveats"])
    with pytest.raises(UserError, match="problem texts"):
        main([str(data_dir / RECORDED), "--kaggle", "--scheduler", f"bank:predictor={tmp_path / 'p'}"])


@pytest.mark.slow
def test_hf_encoder_kind_with_a_tiny_random_encoder(tmp_path: Path) -> None:
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hard", "easy", "question"]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    enc = tmp_path / "enc"
    BertTokenizer(str(tmp_path / "vocab.txt")).save_pretrained(str(enc))
    cfg = BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=64)
    BertForSequenceClassification(cfg).save_pretrained(str(enc))
    from evals.replay_sources import RecordedProblem, RecordedSample, Source
    from evals.replay_sources import _trace as make_trace

    problems, texts = [], {}
    for i in range(24):
        pid, tokens = f"q{i}", (9000 if i % 2 else 600)
        samples = tuple(RecordedSample(make_trace(pid, k, None, tokens, False, "cot"), True) for k in range(2))
        problems.append(RecordedProblem(pid, samples))
        texts[pid] = ("hard " * 6 if i % 2 else "easy ") + "question"
    report = train_difficulty(Source("toy", tuple(problems), ()), texts, tmp_path / "hfp",
                              TrainSettings(kind="hf", model=str(enc), epochs=1, lr=1e-3, max_length=32))
    assert report.kind == "hf" and report.heldout_problems >= 3
    pred = load_predictor(tmp_path / "hfp")
    vals = pred.predict(["hard hard question", "easy question"])
    assert vals.shape == (2,) and np.all(np.isfinite(vals)) and np.all(vals >= 1.0)
    assert json.loads((tmp_path / "hfp" / "predictor.json").read_text())["kind"] == "hf"
