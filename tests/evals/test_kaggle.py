"""make_predict and the local gateway on the scripted backend (logic; the real engine is in
test_kaggle_real.py): contract, range reduction, fallbacks, deadlines, resume, response checks."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from agent.api import Solver
from agent.errors import UserError
from agent.solve import SolveConfig
from evals.fakes import FakeBackend, FakePool
from evals.kaggle import KaggleConfig, make_predict
from evals.kaggle_local import GatewayConfig, GatewayError, check_response, read_test_csv, run_gateway

FIXTURE_ROWS = [("a1", "What is 1+1?", "2"), ("b2", "What is 2+2?", "4"), ("c3", "What is 3+3?", "6")]


def fake_solver(answers: tuple[int, ...] = (123456,), delay: float = 0.0, fail: bool = False,
                samples: int = 4, **kw: Any) -> tuple[Solver, FakeBackend]:
    backend = FakeBackend(answers=answers, delay=delay)

    async def open_backend() -> Any:
        if fail:
            raise UserError("could not start vLLM on model 'nope': no such model")
        return backend

    async def open_pool(size: int) -> Any:
        return FakePool()

    cfg = SolveConfig(samples=samples, tir_ratio=0.5, **kw)
    return Solver(cfg, open_backend=open_backend, open_pool=open_pool, start=False), backend


def write_csv(path: Path, rows: list[tuple[str, ...]] = FIXTURE_ROWS, header: str = "id,problem,answer") -> str:
    lines = [header] + [",".join(f'"{c}"' for c in r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def series(pid: str, text: str) -> tuple[pl.Series, pl.Series]:
    return pl.Series("id", [pid]), pl.Series("problem", [text])


def test_predict_answers_one_row_frame_reduced_to_range(tmp_path: Path) -> None:
    solver, backend = fake_solver(answers=(123456,))
    predict = make_predict(KaggleConfig(competition="aimo3", time_budget=600, run_dir=str(tmp_path / "run")),
                           solver=solver)
    try:
        out = predict(*series("x1", "Find x."))
    finally:
        predict.close()
    assert isinstance(out, pl.DataFrame)
    assert out.to_dicts() == [{"id": "x1", "answer": 23456}]
    assert predict.outcomes[0].how == "solved" and backend.requests > 0


def test_predict_aimo2_modulus_and_pandas_input(tmp_path: Path) -> None:
    import pandas as pd

    solver, _ = fake_solver(answers=(123456,))
    predict = make_predict(KaggleConfig(competition="aimo2", time_budget=600, run_dir=str(tmp_path / "run")),
                           solver=solver)
    try:
        out = predict(pd.Series(["p"], name="id"), pd.Series(["Find y."], name="problem"))
    finally:
        predict.close()
    assert out["answer"].to_list() == [456]


def test_engine_that_fails_to_load_gives_logged_fallback(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    solver, _ = fake_solver(fail=True)
    predict = make_predict(KaggleConfig(time_budget=600, fallback=7, run_dir=str(tmp_path / "run")), solver=solver)
    try:
        first = predict(*series("a", "Q?"))
        second = predict(*series("b", "Q?"))  # the run goes on
    finally:
        predict.close()
    assert first["answer"].to_list() == [7] and second["answer"].to_list() == [7]
    assert predict.outcomes[0].how.startswith("fallback:engine failed to start: UserError")
    assert "fallback answer 7" in caplog.text
    assert (tmp_path / "run" / "predict.log").read_text().count("fallback answer 7") == 2


def test_bad_row_never_raises(tmp_path: Path) -> None:
    solver, _ = fake_solver()
    predict = make_predict(KaggleConfig(time_budget=600, run_dir=str(tmp_path / "run")), solver=solver)
    try:
        out = predict(pl.Series("id", ["z"]), pl.Series("problem", [None]))
        two = predict(pl.Series("id", ["y", "w"]), pl.Series("problem", ["a", "b"]))
    finally:
        predict.close()
    assert out.to_dicts() == [{"id": "z", "answer": 0}]
    assert two["answer"].to_list() == [0]
    assert all(o.how.startswith("fallback:error: ValueError") for o in predict.outcomes)


def test_no_time_left_gives_fallback_without_solving(tmp_path: Path) -> None:
    solver, backend = fake_solver()
    predict = make_predict(KaggleConfig(time_budget=0.5, reserve=0.0, problems=1, run_dir=str(tmp_path / "run")),
                           solver=solver)
    try:
        out = predict(*series("a", "Q?"))
    finally:
        predict.close()
    assert out["answer"].to_list() == [0]
    assert predict.outcomes[0].how == "fallback:no_time"
    assert backend.requests == 0


class HalfStuck(FakeBackend):
    """The first request answers at once; later ones hang for `hang` s, ignoring cancellation."""

    def __init__(self, hang: float) -> None:
        super().__init__(answers=(77,))
        self.hang, self.n = hang, 0

    async def stream(self, prompt_ids: Any, params: Any, request_id: str) -> Any:
        self.n += 1
        if self.n > 1:
            end = time.monotonic() + self.hang
            while time.monotonic() < end:
                try:
                    await asyncio.sleep(end - time.monotonic())
                except asyncio.CancelledError:
                    pass
        async for c in super().stream(prompt_ids, params, request_id):
            yield c


def test_hung_problem_is_cut_off_with_the_leading_partial_vote(tmp_path: Path) -> None:
    backend = HalfStuck(hang=10.0)

    async def open_backend() -> Any:
        return backend

    solver = Solver(SolveConfig(samples=3, tir_ratio=0.0), open_backend=open_backend, start=False)
    predict = make_predict(KaggleConfig(time_budget=2, reserve=0, problems=1, grace=0.5, scheduler="flat",
                                        run_dir=str(tmp_path / "run")), solver=solver)
    t0 = time.monotonic()
    try:
        out = predict(*series("h", "Q?"))
        took = time.monotonic() - t0
    finally:
        predict.close()
    assert predict.outcomes[0].how == "fallback:cut off at the deadline"
    assert took < 8  # cut off, not waiting for the stuck samples
    assert out["answer"].to_list() == [77]  # the finished sample's answer, not the fixed guess


def test_rerun_answers_stored_problems_without_solving(tmp_path: Path) -> None:
    run = str(tmp_path / "run")
    solver, backend = fake_solver(answers=(5,))
    predict = make_predict(KaggleConfig(time_budget=600, run_dir=run), solver=solver)
    try:
        predict(*series("a", "Q?"))
    finally:
        predict.close()
    solver2, backend2 = fake_solver(answers=(9,))
    predict2 = make_predict(KaggleConfig(time_budget=600, run_dir=run), solver=solver2)
    try:
        again = predict2(*series("a", "Q?"))
        fresh = predict2(*series("b", "Q?"))
    finally:
        predict2.close()
    assert again["answer"].to_list() == [5] and predict2.outcomes[0].how == "stored"
    assert fresh["answer"].to_list() == [9]
    assert predict2.used_before > 0


def test_tirmath_report_works_on_a_predict_run(tmp_path: Path) -> None:
    from evals.report import write_report
    from evals.store import read_run

    run = tmp_path / "run"
    solver, _ = fake_solver(answers=(2,))
    predict = make_predict(KaggleConfig(time_budget=600, run_dir=str(run)), solver=solver)
    try:
        predict(pl.Series("id", ["a1"]), pl.Series("problem", ["What is 1+1?"]), pl.Series("answer", [2]))
    finally:
        predict.close()
    data = read_run(run)
    assert data.problems["a1"].correct is True and len(data.samples["a1"]) == 4
    paths = write_report(data, tmp_path / "report")
    assert "Kaggle score: 1/1" in paths.markdown.read_text()


def test_gateway_serves_shuffled_rows_and_scores(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "test.csv")
    solver, _ = fake_solver(answers=(4,))
    predict = make_predict(KaggleConfig(time_budget=600, problems=3, run_dir=str(tmp_path / "run")), solver=solver)
    lines: list[str] = []
    try:
        report = run_gateway(predict, GatewayConfig(csv=csv, time_budget=600, seed=1,
                                                     out=str(tmp_path / "submission.parquet")), echo=lines.append)
    finally:
        predict.close()
    sub = pl.read_parquet(tmp_path / "submission.parquet")
    assert sorted(sub["id"].to_list()) == ["a1", "b2", "c3"]
    assert sub["answer"].to_list() == [4, 4, 4]
    assert report.score == (1, 3)
    assert [r.id for r in report.rows] != ["a1", "b2", "c3"] or len(set(map(str, report.rows))) == 3
    assert all("used" in ln and "left" in ln for ln in lines)


def test_gateway_order_is_seeded() -> None:
    from evals.kaggle_local import shuffled

    rows = [{"id": str(i)} for i in range(20)]
    assert shuffled(rows, 3) == shuffled(rows, 3)
    assert shuffled(rows, 3) != shuffled(rows, 4)


def test_gateway_first_answer_deadline(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "t.csv")

    def slow_predict(id_: Any, problem: Any, answer: Any = None) -> Any:
        time.sleep(1.5)
        return pl.DataFrame({"id": id_, "answer": [1]})

    with pytest.raises(GatewayError, match="no answer within the first answer"):
        run_gateway(slow_predict, GatewayConfig(csv=csv, startup_limit=0.3, out=str(tmp_path / "s.parquet")),
                    echo=None)


def test_gateway_overall_budget(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "t.csv")

    def slow_predict(id_: Any, problem: Any, answer: Any = None) -> Any:
        time.sleep(0.5)
        return pl.DataFrame({"id": id_, "answer": [1]})

    with pytest.raises(GatewayError, match="time budget"):
        run_gateway(slow_predict, GatewayConfig(csv=csv, time_budget=0.8, out=str(tmp_path / "s.parquet")),
                    echo=None)


ROW = {"id": "a1", "problem": "Q"}


@pytest.mark.parametrize("resp, message", [
    (None, "returned nothing"),
    ("12", "not a DataFrame"),
    (pl.DataFrame({"id": ["a1", "a1"], "answer": [1, 2]}), "expected 1 row, got 2"),
    (pl.DataFrame({"id": ["zz"], "answer": [1]}), "id is 'zz'"),
    (pl.DataFrame({"id": ["a1"], "answer": [100000]}), "outside 0..99999"),
    (pl.DataFrame({"id": ["a1"], "answer": [-1]}), "outside"),
    (pl.DataFrame({"id": ["a1"], "answer": [1.5]}), "not an integer"),
    (pl.DataFrame({"id": ["a1"], "answer": ["7"]}), "not an integer"),
    (pl.DataFrame({"id": ["a1"], "result": [7]}), "no 'answer' column"),
])
def test_check_response_rejects(resp: Any, message: str) -> None:
    with pytest.raises(GatewayError, match=message):
        check_response(resp, ROW, 100000)


@pytest.mark.parametrize("resp", [pl.DataFrame({"id": ["a1"], "answer": [99999]}), pl.DataFrame({"answer": [5]}), 5])
def test_check_response_accepts(resp: Any) -> None:
    assert check_response(resp, ROW, 100000) in (99999, 5)


def test_csv_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no problem column"):
        read_test_csv(write_csv(tmp_path / "a.csv", [("1", "x")], header="id,question"))
    with pytest.raises(UserError, match="duplicate id 'a1'"):
        read_test_csv(write_csv(tmp_path / "b.csv", [("a1", "x"), ("a1", "y")], header="id,problem"))
    with pytest.raises(UserError, match="no such file"):
        read_test_csv(str(tmp_path / "missing.csv"))


def test_cli_bad_input_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agent.cli import main

    bad = write_csv(tmp_path / "a.csv", [("1", "x")], header="id,question")
    assert main(["kaggle-local", "--csv", bad]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no problem column" in err[0]
    good = write_csv(tmp_path / "b.csv")
    assert main(["kaggle-local", "--csv", good, "--time-budget", "2", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "too small" in err[0]
    dup = write_csv(tmp_path / "c.csv", [("a1", "x"), ("a1", "y")], header="id,problem")
    assert main(["kaggle-local", "--csv", dup]) == 2
    assert "duplicate id" in capsys.readouterr().err


def test_cli_model_that_fails_to_load_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agent.cli import main

    csv = write_csv(tmp_path / "b.csv")
    code = main(["kaggle-local", "--csv", csv, "--model", str(tmp_path / "no-model"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "no-model" in err[0]


def test_solver_solve_inside_a_running_event_loop() -> None:
    solver, _ = fake_solver(answers=(11,))

    async def notebook_cell() -> tuple[Any, Any]:
        blocking = solver.solve("What is 5+6?", time_budget=30)  # a Jupyter cell calls it like this
        awaited = await solver.asolve("What is 5+6?")
        return blocking, awaited

    with solver:
        first, second = asyncio.run(notebook_cell())
        third = solver.solve("What is 5+6?")  # reused: the same backend, no restart
    assert first.answer == second.answer == third.answer == 11
    assert first.to_dict()["samples"][0]["mode"] in ("cot", "tir")
    assert solver._closed and not solver._thread.is_alive()  # type: ignore[union-attr]


def test_solver_errors(tmp_path: Path) -> None:
    solver, _ = fake_solver(fail=True)
    with solver, pytest.raises(UserError, match="could not start vLLM"):
        solver.solve("Q?")
    ok, _ = fake_solver()
    with ok:
        with pytest.raises(UserError, match="time_budget must be positive"):
            ok.solve("Q?", time_budget=0)
        with pytest.raises(UserError, match="empty"):
            ok.solve("   ")
