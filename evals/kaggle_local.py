"""A local stand-in for the AIMO `kaggle_evaluation` gateway, for rehearsing a submission.

`run_gateway(predict, GatewayConfig(csv=...))` reproduces the competition's contract (checked
against the AIMO2/AIMO3 gateway code): it reads the test CSV, shuffles its rows (seeded here, so
a rehearsal can be repeated and resumed), calls `predict(*row)` once per row with one-row polars
Series (`id`, `problem`, and `answer` when the CSV has it; pandas Series without polars), and
checks each response: a DataFrame (or Series, or a plain int) of exactly one row whose `answer`
is an integer in the competition's range and whose `id`, when given, is the row's. It enforces
the first-answer deadline (15 minutes from start) and the run's overall time budget, prints
each problem's time used and time left, writes `submission.parquet` (id, answer) and, when the
CSV has answers, the score. A violation is a `GatewayError` (one line): the rehearsal failed.

`AIMO3InferenceServer` / `AIMO2InferenceServer` have the `kaggle_evaluation` interface
(`serve()`, `run_local_gateway(paths)`), so a notebook can import them in its place, and
`run_notebook(path, config)` executes a notebook or script with these classes installed as
`kaggle_evaluation.aimo_{2,3}_inference_server`: the notebook runs exactly as written.

Not covered: making predict (evals.kaggle), the gRPC transport of the real gateway, Kaggle's
15-minute limit on starting the server process (here: on the first answer).
"""

from __future__ import annotations

import concurrent.futures
import json
import random
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import UserError

STARTUP_LIMIT = 15 * 60.0


class GatewayError(UserError):
    """The rehearsal failed the competition's contract (one line)."""


@dataclass(frozen=True)
class GatewayConfig:
    csv: str
    competition: str = "aimo3"
    time_budget: float | None = None  # seconds for the whole run (None: the competition's)
    seed: int = 0  # row order
    startup_limit: float = STARTUP_LIMIT  # seconds until the first answer
    out: str = "submission.parquet"

    def modulus(self) -> int:
        from evals.kaggle import COMPETITIONS

        return COMPETITIONS[self.competition].modulus

    def budget(self) -> float:
        from evals.kaggle import COMPETITIONS

        return self.time_budget or COMPETITIONS[self.competition].seconds


@dataclass(frozen=True)
class Served:
    """One answered row."""

    id: str
    answer: int
    reference: str | None
    correct: bool | None
    seconds: float  # the predict call
    left: float  # run budget left after it


@dataclass
class GatewayReport:
    budget: float
    rows: list[Served] = field(default_factory=list)
    used: float = 0.0  # wall seconds from the start to the last answer
    submission: str = ""

    @property
    def score(self) -> tuple[int, int] | None:
        graded = [r.correct for r in self.rows if r.correct is not None]
        return (sum(graded), len(graded)) if graded else None

    @property
    def in_predict(self) -> float:
        return sum(r.seconds for r in self.rows)


def read_test_csv(path: str) -> list[dict[str, Any]]:
    """The CSV's rows; UserError for a missing file, no id/problem columns, a duplicate id, no rows."""
    import csv

    p = Path(path)
    if not p.is_file():
        raise UserError(f"--csv {path}: no such file")
    try:
        with p.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            cols = list(reader.fieldnames or [])
            rows = [dict(r) for r in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"{path}: cannot read the CSV ({e})") from None
    missing = [c for c in ("id", "problem") if c not in cols]
    if missing:
        raise UserError(f"{path}: no {' or '.join(missing)} column (columns: {', '.join(cols) or 'none'})")
    seen: dict[str, int] = {}
    for n, r in enumerate(rows, 2):
        if r["id"] in seen:
            raise UserError(f"{path} line {n}: duplicate id {r['id']!r} (first on line {seen[r['id']]})")
        seen[r["id"]] = n
    if not rows:
        raise UserError(f"{path}: no rows")
    return _typed(p, rows)


def _typed(path: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with the column types polars infers, as the real gateway (pl.read_csv) sees them."""
    try:
        import polars as pl
    except ImportError:
        return rows
    try:
        return list(pl.read_csv(path).to_dicts())
    except Exception:  # polars stricter than the csv module on odd files: keep the strings
        return rows


def shuffled(rows: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    order = list(rows)
    random.Random(f"kaggle-local:{seed}").shuffle(order)
    return order


def row_args(row: dict[str, Any]) -> tuple[Any, ...]:
    """The row as the gateway passes it: one one-row Series per column (polars, else pandas)."""
    try:
        import polars as pl

        return tuple(pl.DataFrame({k: [v] for k, v in row.items()}))
    except ImportError:
        import pandas as pd

        return tuple(pd.Series([v], name=k) for k, v in row.items())


def check_response(resp: Any, row: dict[str, Any], modulus: int) -> int:
    """The answer in a predict response; GatewayError saying what is wrong with it."""
    rid = row["id"]
    if resp is None:
        raise GatewayError(f"problem {rid}: predict returned nothing")
    if isinstance(resp, (bool, str)) or not isinstance(resp, int) and not hasattr(resp, "__len__"):
        raise GatewayError(f"problem {rid}: predict returned a {type(resp).__name__}, not a DataFrame")
    if isinstance(resp, int):
        value: Any = resp
    else:
        if len(resp) != 1:
            raise GatewayError(f"problem {rid}: expected 1 row, got {len(resp)}")
        cols = list(getattr(resp, "columns", [getattr(resp, "name", "answer")]))
        if "answer" not in cols:
            raise GatewayError(f"problem {rid}: the response has no 'answer' column (columns: {cols})")
        from evals.kaggle import scalar

        value = scalar(resp["answer"] if hasattr(resp, "columns") else resp)
        if "id" in cols and str(scalar(resp["id"])) != str(rid):
            raise GatewayError(f"problem {rid}: the response's id is {scalar(resp['id'])!r}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise GatewayError(f"problem {rid}: answer {value!r} is not an integer")
    if not 0 <= int(value) < modulus:
        raise GatewayError(f"problem {rid}: answer {value} is outside 0..{modulus - 1}")
    return int(value)


def _grade(answer: int, reference: Any) -> bool | None:
    from agent.answers import normalize_integer

    if reference is None or str(reference).strip() == "":
        return None
    return normalize_integer(str(reference)) == answer


def run_gateway(predict: Callable[..., Any], config: GatewayConfig, echo: Callable[[str], None] | None = print,
                started: float | None = None) -> GatewayReport:
    """Serve every row to `predict` under the contract; write the submission; return the report.

    `started` (a `time.monotonic()` value) is when the run's clock began (default: now)."""
    rows = shuffled(read_test_csv(config.csv), config.seed)
    t0 = time.monotonic() if started is None else started
    report = GatewayReport(budget=config.budget())
    answers: list[tuple[str, int]] = []
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kaggle-local-predict")
    try:
        for i, row in enumerate(rows):
            deadline = t0 + (config.startup_limit if i == 0 else report.budget)
            deadline = min(deadline, t0 + report.budget)
            call = time.monotonic()
            fut = pool.submit(predict, *row_args(row))
            try:
                resp = fut.result(timeout=max(0.0, deadline - call))
            except concurrent.futures.TimeoutError:
                what = "the first answer" if i == 0 else "the run's time budget"
                raise GatewayError(f"problem {row['id']}: no answer within {what} "
                                   f"({deadline - t0:.0f} s from the start)") from None
            except Exception as e:
                raise GatewayError(f"problem {row['id']}: predict raised {type(e).__name__}: {e}") from None
            value = check_response(resp, row, config.modulus())
            now = time.monotonic()
            served = Served(str(row["id"]), value, row.get("answer"), _grade(value, row.get("answer")),
                            now - call, report.budget - (now - t0))
            report.rows.append(served)
            answers.append((served.id, value))
            if echo is not None:
                echo(_line(i, len(rows), served))
        report.used = time.monotonic() - t0
    finally:
        pool.shutdown(wait=False)
    report.submission = write_submission(answers, config.out)
    return report


def _line(i: int, n: int, s: Served) -> str:
    graded = "" if s.correct is None else ("  right" if s.correct else "  wrong")
    return f"[{i + 1}/{n}] {s.id}: {s.answer}{graded}   used {s.seconds:.1f} s, left {s.left:.1f} s"


def write_submission(answers: list[tuple[str, int]], out: str) -> str:
    """submission.parquet with columns id, answer (polars, else pyarrow)."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    ids, values = [a for a, _ in answers], [v for _, v in answers]
    try:
        import polars as pl

        pl.DataFrame({"id": ids, "answer": values}, schema={"id": pl.String, "answer": pl.Int64}).write_parquet(out)
    except ImportError:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"id": ids, "answer": pa.array(values, pa.int64())}), out)
    return out


def summary(report: GatewayReport) -> str:
    lines = [f"submission: {report.submission} ({len(report.rows)} rows)",
             f"time: {report.used:.1f} s of {report.budget:.1f} s; in predict {report.in_predict:.1f} s"]
    if report.score is not None:
        right, graded = report.score
        lines.append(f"score: {right}/{graded}")
    return "\n".join(lines)


# -- the kaggle_evaluation interface ------------------------------------------------------------

# Set by `tirmath kaggle-local --notebook`: the settings a notebook's gateway call runs with.
_override: GatewayConfig | None = None
last_report: GatewayReport | None = None


class InferenceServer:
    """`kaggle_evaluation`'s InferenceServer interface over `run_gateway`."""

    competition = "aimo3"

    def __init__(self, predict: Callable[..., Any], *_: Any, **__: Any) -> None:
        self.predict = predict

    def run_local_gateway(self, data_paths: tuple[str, ...] | None = None, *_: Any, **__: Any) -> None:
        global last_report
        if _override is not None:
            config = _override
        elif data_paths:
            config = GatewayConfig(csv=str(data_paths[0]), competition=self.competition)
        else:
            raise GatewayError("run_local_gateway needs the test CSV's path: run_local_gateway((path,))")
        last_report = run_gateway(self.predict, config)
        print(summary(last_report))

    def serve(self, *_: Any, **__: Any) -> None:
        """The competition rerun: here, the same as `run_local_gateway` on the rehearsal's CSV."""
        self.run_local_gateway()


class AIMO3InferenceServer(InferenceServer):
    competition = "aimo3"


class AIMO2InferenceServer(InferenceServer):
    competition = "aimo2"


def install_kaggle_evaluation() -> None:
    """Make `import kaggle_evaluation.aimo_{2,3}_inference_server` give these classes."""
    pkg = types.ModuleType("kaggle_evaluation")
    pkg.__path__ = []
    sys.modules["kaggle_evaluation"] = pkg
    for n, cls in (("2", AIMO2InferenceServer), ("3", AIMO3InferenceServer)):
        mod = types.ModuleType(f"kaggle_evaluation.aimo_{n}_inference_server")
        setattr(mod, cls.__name__, cls)
        sys.modules[mod.__name__] = mod
        setattr(pkg, f"aimo_{n}_inference_server", mod)


def notebook_source(path: str) -> str:
    """The code of a notebook (code cells; shell `!` and `%` magic lines dropped) or a script."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"--notebook {path}: no such file")
    text = p.read_text(encoding="utf-8")
    if p.suffix != ".ipynb":
        return text
    try:
        cells = json.loads(text)["cells"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise UserError(f"{path}: not a Jupyter notebook") from None
    code = []
    for c in cells:
        if c.get("cell_type") == "code":
            src = "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            code.append("\n".join(ln for ln in src.splitlines() if not ln.lstrip().startswith(("!", "%"))))
    return "\n\n".join(code) + "\n"


def run_notebook(path: str, config: GatewayConfig) -> GatewayReport:
    """Run a notebook or script with this gateway as `kaggle_evaluation`; its report.

    If the notebook never starts a gateway itself, its `predict` is served here."""
    global _override, last_report
    install_kaggle_evaluation()
    code = compile(notebook_source(path), path, "exec")
    namespace: dict[str, Any] = {"__name__": "__main__", "__file__": str(Path(path).resolve())}
    _override, last_report = config, None
    try:
        exec(code, namespace)
        report = last_report
        if report is None:
            predict = namespace.get("predict")
            if not callable(predict):
                raise UserError(f"{path}: defines no predict() and starts no gateway")
            report = run_gateway(predict, config)
            print(summary(report))
        return report
    finally:
        _override = None
        closer = getattr(namespace.get("predict"), "close", None)
        if callable(closer):
            closer()
