"""`tirmath replay`: sources, the simulator's arrival/stop/token accounting, determinism, errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agent.budget import make_scheduler
from agent.errors import UserError
from agent.policy import make_policy
from agent.types import Answer, Trace
from evals.replay import main
from evals.replay_sim import Timing, arrivals, kaggle_run, simulate_problem
from evals.replay_sources import GOLD_PLACEHOLDER, RecordedProblem, RecordedSample, read_source
from tirmath.cli import main as cli_main

DATA = Path(os.environ.get("TIRMATH_DATA_DIR") or Path(__file__).resolve().parents[2] / ".." / "shared" / "data")
REC = DATA / "recorded"
QWEN = REC / "aime2025__qwen3-30b-a3b__n8.jsonl"
R1 = REC / "aime1983-2024__deepseek-r1-distill-qwen-1.5b__n8.jsonl"


def problem(specs: list[tuple[int | None, bool, int]], pid: str = "p") -> RecordedProblem:
    """specs: (answer, correct, tokens) per sample, in index order."""
    samples = []
    for i, (v, ok, tok) in enumerate(specs):
        ans = None if v is None else Answer(str(v), v, "boxed")
        tr = Trace(pid, i, 0, "cot", (), ans, "answer" if ans else "length", tok, 0)
        samples.append(RecordedSample(tr, ok))
    return RecordedProblem(pid, tuple(samples))


EASY = problem([(5, True, 1000), (5, True, 2000), (5, True, 3000), (7, False, 9000), (None, False, 16000)])


def test_arrivals_by_tokens_and_concurrency() -> None:
    plan = arrivals(EASY, Timing(speed=100.0), 0, 0)
    assert [a.index for a in plan] == [0, 1, 2, 3, 4]
    assert [a.finish for a in plan] == [10.0, 20.0, 30.0, 90.0, 160.0]
    queued = arrivals(EASY, Timing(speed=100.0, concurrency=1), 0, 0)
    assert [a.finish for a in queued] == [10.0, 30.0, 60.0, 150.0, 310.0]


def test_stop_accounting() -> None:
    plan = arrivals(EASY, Timing(speed=100.0), 0, 0)
    fixed = simulate_problem(EASY, make_policy("fixed"), plan)
    assert fixed.correct and fixed.answer == 5 and fixed.tokens == 31000 and fixed.seconds == 160.0
    early = simulate_problem(EASY, make_policy("agree:3"), plan)
    # stops at t=30 when the third 5 lands: samples 3 and 4 spent 30 s x 100 tok/s each
    assert early.correct and early.used == 3 and early.seconds == 30.0
    assert early.tokens == 1000 + 2000 + 3000 + 3000 + 3000
    assert early.reason == "3 agree on 5"


def test_time_budget_cuts_and_votes_what_finished() -> None:
    plan = arrivals(EASY, Timing(speed=100.0), 0, 0)
    out = simulate_problem(EASY, make_policy("fixed"), plan, budget=25.0)
    assert out.timed_out and out.used == 2 and out.correct and out.seconds == 25.0
    assert out.tokens == 1000 + 2000 + 2500 * 3
    none = simulate_problem(EASY, make_policy("fixed"), plan, budget=5.0)
    assert none.timed_out and none.answer is None and not none.correct


def test_random_orders_are_seeded() -> None:
    a = arrivals(EASY, Timing(), 3, 7)
    assert a == arrivals(EASY, Timing(), 3, 7)
    assert a != arrivals(EASY, Timing(), 4, 7)


def test_banking_beats_flat_on_a_toy_kaggle() -> None:
    # 4 easy problems (one 1000-token sample) then one long one (8000 tokens): 100 tok/s,
    # 200 s total. Flat gives 40 s each and cuts the long one; banking carries the savings.
    easy = problem([(1, True, 1000)], "e")
    long = problem([(2, True, 8000)], "l")
    probs = [easy, easy, easy, easy, long]
    timing = Timing(speed=100.0)
    pol = make_policy("fixed")
    flat = kaggle_run(probs, pol, make_scheduler("flat", 200.0, 5), 200.0, timing, 0, 0)
    bank = kaggle_run(probs, pol, make_scheduler("bank", 200.0, 5), 200.0, timing, 0, 0)
    assert flat.lost == 1 and not flat.outcomes[-1].correct
    assert bank.lost == 0 and bank.outcomes[-1].correct


def test_read_recorded_files() -> None:
    q = read_source(str(QWEN))
    assert len(q.problems) == 30 and all(len(p.samples) == 8 for p in q.problems)
    assert any("16384" in c for c in q.caveats)
    r1 = read_source(str(R1), "same")
    assert len(r1.problems) == 596
    assert any("no answers" in c and "same" in c for c in r1.caveats)
    p = r1.problems[0]
    assert all(s.trace.answer.value == GOLD_PLACEHOLDER for s in p.samples if s.correct and s.trace.answer)


def test_replay_cli_reports_and_is_deterministic(capsys, tmp_path) -> None:
    argv = [str(QWEN), "--policy", "agree:3", "--policy", "posterior:0.9", "--orders", "4", "--seed", "3", "--json"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out) == first
    names = [p["name"] for p in first["policies"]]
    assert names == ["fixed", "agree:3", "posterior:0.9"]
    fixed = first["policies"][0]
    assert 18 <= fixed["acc_mean"] <= 23  # the README's majority figure is 21/30
    assert all(p["tokens_mean"] <= fixed["tokens_mean"] for p in first["policies"])
    assert first["caveats"]


def test_replay_text_kaggle_plot_and_fit(capsys, tmp_path) -> None:
    png, weights = tmp_path / "p.png", tmp_path / "w.json"
    argv = [str(R1), "--assume-wrong", "same", "--policy", "agree:3", "--orders", "2", "--kaggle",
            "--plot", str(png), "--fit-weights", str(weights)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "assumption about wrong answers" in out and "same" in out
    assert "caveat:" in out and "Kaggle" in out and "bank" in out and "flat" in out
    assert png.stat().st_size > 1000
    assert json.loads(weights.read_text())["kind"] == "tirmath-vote-weights"


def test_samples_jsonl_folder(tmp_path, capsys) -> None:
    rows = []
    for i, v in enumerate([4, 4, 9]):
        t = Trace("q1", i, i, "cot", (), Answer(str(v), v, "boxed"), "answer", 100 * (i + 1), 0)
        rows.append(json.dumps(t.to_dict() | {"correct": v == 4}))
    (tmp_path / "samples.jsonl").write_text("\n".join(rows) + "\n")
    assert main([str(tmp_path), "--orders", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["policies"][0]["acc_mean"] == 1.0


@pytest.mark.parametrize(
    "argv_tail,needle",
    [
        (["--policy", "agree:0"], "bad policy spec"),
        (["--policy", "nope"], "unknown policy"),
        (["--scheduler", "nope"], "unknown scheduler"),
        (["--weight", "nope"], "unknown weight scheme"),
        (["--orders", "0"], "--orders"),
    ],
)
def test_bad_options_give_one_user_error(argv_tail: list[str], needle: str, capsys) -> None:
    assert cli_main(["replay", str(QWEN), *argv_tail]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tirmath replay: error:") and needle in err[0]


def test_unreadable_sources(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem_id": "a", "sample": 0, "correct": true, "tokens": 5}\n{oops\n')
    missing_field = tmp_path / "mf.jsonl"
    missing_field.write_text('{"problem_id": "a"}\n')
    empty_dir = tmp_path / "d"
    empty_dir.mkdir()
    for src, needle in [(bad, "line 2"), (missing_field, "line 1"), (tmp_path / "none.jsonl", "no such"),
                        (empty_dir, "neither a run store")]:
        assert cli_main(["replay", str(src)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], err
    with pytest.raises(UserError, match="latenc"):
        main([str(R1), "--clock", "latency"])  # the R1 file records no latencies


def test_run_store_source(tmp_path, capsys) -> None:
    """A run folder written by evals.store replays, graded by the store's own records."""
    from agent.types import Problem, Step
    from evals.store import RunStore, sample_record

    run = tmp_path / "run"
    problems = [Problem("a", "?", "12", modulus=1000), Problem("b", "?", "7", modulus=1000)]
    with RunStore(run, {"samples": 4}) as store:
        for prob, answers in zip(problems, [[12, 12, 5, 12], [3, 7, 7, None]], strict=True):
            for i, v in enumerate(answers):
                steps = (Step("code", "```python\nprint(1)\n```"), Step("output", f"```output\n{v}\n```", status="ok"))
                ans = None if v is None else Answer(str(v), v, "boxed")
                t = Trace(prob.id, i, i, "tir", steps, ans, "answer" if ans else "length", 500 * (i + 1), 1,
                          seconds=5.0 * (i + 1))
                store.add_sample(sample_record(prob, t))
    argv = [str(run), "--policy", "agree:2", "--orders", "3", "--weight", "tir_clean", "--clock", "latency", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    fixed, agree = out["policies"]
    assert fixed["acc_mean"] == 2.0 and agree["acc_mean"] == 2.0
    assert agree["tokens_mean"] < fixed["tokens_mean"]
