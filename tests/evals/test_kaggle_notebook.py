"""examples/aimo3_submission.ipynb executed by Jupyter's own runner (nbclient) on the default model
and three AIMO3 reference problems, with tirmath's local gateway in place of kaggle_evaluation."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from tests.evals.test_kaggle_real import ROOT, reference_csv

pytestmark = [pytest.mark.slow, pytest.mark.engine]


def test_submission_notebook_runs_under_jupyter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    csv = reference_csv(tmp_path / "reference.csv")
    for k, v in {"PYTHONPATH": str(ROOT), "TIRMATH_TEST_CSV": str(csv), "TIRMATH_SAMPLES": "2",
                 "TIRMATH_MAX_TOKENS": "48", "TIRMATH_TIME_BUDGET": "1200", "TIRMATH_RUN_DIR": str(tmp_path / "run"),
                 "TIRMATH_BUNDLE": str(tmp_path / "no-bundle"), "VLLM_CPU_KVCACHE_SPACE": "1"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("KAGGLE_IS_COMPETITION_RERUN", raising=False)
    nb = nbformat.read(ROOT / "examples" / "aimo3_submission.ipynb", as_version=4)
    NotebookClient(nb, timeout=1500, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "score: " in text and "submission: submission.parquet (3 rows)" in text
    sub = pl.read_parquet(tmp_path / "submission.parquet")  # written where Kaggle expects it: the working dir
    assert sorted(sub["id"].to_list()) == sorted(pl.read_csv(csv)["id"].to_list())
    assert sub["answer"].dtype == pl.Int64 and all(0 <= a < 100000 for a in sub["answer"].to_list())
    from evals.store import read_run

    assert len(read_run(tmp_path / "run").problems) == 3
