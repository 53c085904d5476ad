"""Everyday command-line mistakes, one per kind and more, through the real `tirmath` entry point.

Each must give exit code 2, no traceback, and exactly one line on stderr that names the flag or
file at fault, before any engine, kernel or download starts (the built-in model is never
converted: TIRMATH_CACHE points at an empty folder for the whole table, and it stays empty).
The table is run in-process (the real `tirmath.cli.main`) to keep CI fast; two rows also run as
real subprocesses.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tirmath.cli import main

MISTAKES: list[tuple[str, str, str]] = [  # (command line with {tmp}, text the line must contain, kind)
    ("solve x --trace {tmp}", "--trace", "output path is a folder"),
    ("eval --dataset aime2025 --out {tmp}/file.txt", "--out", "output folder is a file"),
    ("report {tmp} --out {tmp}/file.txt", "--out", "report folder is a file"),
    ("compare {tmp} {tmp} --out {tmp}", "--out", "compare file is a folder"),
    ("solve --trace {tmp}/no/such/dir/t.jsonl x", "--trace", "output folder missing"),
    ("solve --file {tmp}/binary.bin", "--file", "input is binary"),
    ("solve --file {tmp}/latin1.txt", "--file", "input not UTF-8"),
    ("solve --file {tmp}", "--file", "input is a folder"),
    ("solve --file {tmp}/missing.txt", "--file", "input missing"),
    ("solve x --prompt-family nope", "--prompt-family", "bad choice"),
    ("solve x --concurrency -1", "concurrency", "negative concurrency"),
    ("solve x --sample-concurrency 0", "--sample-concurrency", "zero concurrency"),
    ("solve x --dtype garbage", "--dtype", "bad dtype"),
    ("solve x --max-model-len 0", "--max-model-len", "zero context"),
    ("solve x --modulus 0", "--modulus", "zero modulus"),
    ("solve x --modulus -7", "--modulus", "negative modulus"),
    ("solve x --temperature nan", "--temperature", "nan"),
    ("solve x --top-p inf", "--top-p", "inf"),
    ("solve x --min-p 1.5", "--min-p", "min_p above 1"),
    ("solve x --tir-ratio 2", "--tir-ratio", "ratio above 1"),
    ("solve x --seed abc", "--seed", "not an int"),
    ("solve x --engine foo", "--engine", "unknown engine"),
    ("solve x --policy sometimes", "--policy", "unknown policy"),
    ("solve x --weight heavy", "--weight", "unknown weight"),
    ("solve x --server htp:/x", "--server", "malformed URL"),
    ("solve x --server http://127.0.0.1:1/v1 --server http://127.0.0.1:2/v1", "--server", "two servers for solve"),
    ("solve x --engine-arg nokey", "--engine-arg", "engine arg not KEY=VALUE"),
    ("solve x --speculative-config {{bad", "--speculative-config", "bad JSON"),
    ("solve x --gpu-memory-utilization 1.5", "--gpu-memory-utilization", "share above 1"),
    ("solve x --config {tmp}/missing.yaml", "--config", "settings file missing"),
    ("solve x --config {tmp}/bad.yaml", "bad.yaml", "settings file with a bad value"),
    ("solve x --config {tmp}/unknown.yaml", "flux", "settings file with an unknown key"),
    ("solve x --preset nope", "--preset", "unknown preset"),
    ("solve x --bogus", "--bogus", "unknown flag"),
    ("solve", "PROBLEM", "no problem given"),
    ("solve x --dataset aime2025 --id 1", "exactly one", "two problems given"),
    ("solve --dataset aime2025", "--id", "dataset without id"),
    ("solve --dataset nosuchset --id 1", "nosuchset", "unknown dataset"),
    ("solve --dataset aime2025 --id nope", "nope", "unknown problem id"),
    ("eval --dataset aime2025", "--out", "eval without --out"),
    ("eval --dataset aime2025 --out {tmp}/r --kernels 0", "--kernels", "zero kernels"),
    ("eval --dataset aime2025 --out {tmp}/r --concurrency 0", "--concurrency", "zero problems in flight"),
    ("eval --dataset aime2025 --out {tmp}/r --limit 0", "--limit", "zero limit"),
    ("eval --dataset aime2025 --out {tmp}/r --scheduler fast", "--scheduler", "unknown scheduler"),
    ("gen-tir --dataset aime2025 --out {tmp}/g --dedup 2", "--dedup", "threshold above 1"),
    ("gen-tir --dataset aime2025 --out {tmp}/g --keep 0", "--keep", "keep zero"),
    ("replay aime2025__qwen3-30b-a3b__n8 --speed 0", "--speed", "zero speed"),
    ("replay aime2025__qwen3-30b-a3b__n8 --orders 0", "--orders", "zero orders"),
    ("replay {tmp}/missing.jsonl", "missing.jsonl", "missing replay source"),
    ("merge a b --weights nan nan --out {tmp}/m", "--weights", "NaN merge weights"),
    ("merge a b --weights 1", "--weights", "one merge weight"),
    ("train sft --config nosuchrecipe", "nosuchrecipe", "unknown recipe"),
    ("train rl", "stage", "unknown stage"),
    ("sandbox run {tmp}/missing.py", "missing.py", "missing cell file"),
    ("nosuchcommand", "nosuchcommand", "unknown command"),
]


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("mistakes")
    (d / "file.txt").write_text("x")
    (d / "binary.bin").write_bytes(b"\x00\x01\x02PK\x03\x04")
    (d / "latin1.txt").write_bytes("caf\xe9 = 2".encode("latin-1"))
    (d / "bad.yaml").write_text("max_tokens: lots\n")
    (d / "unknown.yaml").write_text("flux: 3\n")
    return d


@pytest.fixture(autouse=True, scope="module")
def empty_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("TIRMATH_CACHE", str(cache))
    yield cache
    mp.undo()
    assert not any(cache.iterdir()), "a mistake reached the model download/conversion"


@pytest.mark.parametrize("line,names,kind", MISTAKES, ids=[m[2] for m in MISTAKES])
def test_mistake_is_one_clear_line(line: str, names: str, kind: str, tmp: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    code = main(line.format(tmp=tmp).split())
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, (kind, err)
    assert "Traceback" not in err
    assert len(lines) == 1, (kind, err)
    assert lines[0].startswith("tirmath") and names in lines[0], (kind, lines[0])


def test_no_command_prints_usage_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    out = capsys.readouterr()
    assert out.out == "" and "usage: tirmath COMMAND" in out.err


@pytest.mark.parametrize("args,names", [(["solve", "x", "--seed", "abc"], "--seed"),
                                        (["eval", "--dataset", "aime2025"], "--out")])
def test_mistake_in_a_real_process(args: list[str], names: str, tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "tirmath", *args], capture_output=True, text=True, timeout=120,
                       env={**__import__("os").environ, "TIRMATH_CACHE": str(tmp_path)})
    assert p.returncode == 2 and p.stdout == "" and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and names in p.stderr
