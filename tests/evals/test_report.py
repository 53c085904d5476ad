"""Report, compare and the HTML viewer: content, escaping of model text, and a real headless browser."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from agent.types import Problem
from evals.compare import compare_runs
from evals.report import write_report
from evals.store import read_run
from tests.evals.helpers import make_run, tir_trace

EVIL = "<script>document.body.setAttribute('data-pwned','1')</script><img src=x onerror=\"document.title='pwned'\">"
PROBS = [Problem("p<1>", "What is 6*7? <b>bold?</b>", "42"), Problem("p2", "What is 2+3?", "5")]


def _run(tmp: Path, name: str, p2_answer: int) -> Path:
    d = tmp / name
    make_run(d, PROBS, {
        "p<1>": [tir_trace("p<1>", 0, 42, words=EVIL, tokens=5000), tir_trace("p<1>", 1, 41, ("error",), tokens=9000)],
        "p2": [tir_trace("p2", 0, p2_answer, tokens=300), tir_trace("p2", 1, p2_answer, tokens=20000)],
    })
    return d


def test_report_files_and_escaping(tmp_path: Path) -> None:
    run = _run(tmp_path, "a", 5)
    paths = write_report(read_run(run), tmp_path / "rep")
    md = paths.markdown.read_text()
    assert "| pass@1 | 75.0% | 75.0% |" in md  # p<1>: 1/2, p2: 2/2 -> (0.5 + 1) / 2
    assert "| 4096 | 25.0% |" in md  # only p2 sample 0 (300 tokens) within 4096
    assert all(p.stat().st_size > 1000 and p.read_bytes()[:4] == b"\x89PNG" for p in paths.plots)
    html = paths.html.read_text()
    assert "<script>document.body" not in html and "&lt;script&gt;document.body" in html
    assert 'onerror="' not in html
    assert "p&lt;1&gt;" in html and "&lt;b&gt;bold?&lt;/b&gt;" in html
    assert html.count('class="sample"') == 4


def test_compare_two_runs(tmp_path: Path) -> None:
    a, b = _run(tmp_path, "a", 5), _run(tmp_path, "b", 6)
    text = compare_runs(read_run(a), read_run(b), "a", "b")
    assert "| voted accuracy | 100.0% | 50.0% | -50.0 pts |" in text
    assert "| p2 | 5 (right) | 2/2 | 6 (wrong) | 0/2 | broken |" in text


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("chromium is not installed: apt-get install -y chromium")
    return exe


@pytest.mark.browser
def test_viewer_in_headless_chromium(tmp_path: Path) -> None:
    paths = write_report(read_run(_run(tmp_path, "a", 5)), tmp_path / "rep")
    profile = tmp_path / "profile"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}"]
    dom = subprocess.run([_chromium(), *flags, "--dump-dom", paths.html.as_uri()], capture_output=True,
                         text=True, timeout=120).stdout
    assert "2 problems, 4 samples shown" in dom  # the viewer's own script ran
    assert "2 of 2 problems" in dom
    assert "data-pwned" not in dom.split("<main")[0] and "<body data-pwned" not in dom  # model text never ran
    assert "&lt;script&gt;document.body.setAttribute" in dom
    assert "print(42)" in dom and "```output" in dom
    shot = tmp_path / "shot.png"
    subprocess.run([_chromium(), *flags, f"--screenshot={shot}", "--window-size=1200,900", paths.html.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 5000
