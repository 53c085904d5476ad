"""The agent end to end on real parts: the vLLM CPU engine on the default model, real
sandboxed kernels, the solve CLI as a user runs it (in-process engine and a local server)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from agent.config import RolloutConfig, SolveConfig
from agent.solve import solve
from agent.types import Problem, Trace

pytestmark = [pytest.mark.engine, pytest.mark.slow]

PROBLEM = Problem(id="cubes", text="What is the sum of the cubes of the integers from 1 to 20?", answer="44100")




async def test_tir_samples_run_code_in_real_kernels(vllm_backend, pool) -> None:
    roll = RolloutConfig(max_tokens=200, temperature=0.8, cell_timeout=5.0, record_tokens=True)
    res = await solve(PROBLEM, vllm_backend, pool, SolveConfig(samples=4, tir_ratio=1.0, seed=3, rollout=roll))
    assert [t.index for t in res.traces] == [0, 1, 2, 3] and all(t.mode == "tir" for t in res.traces)
    ran = [t for t in res.traces if t.tool_calls > 0]
    assert ran, "the few-shot prompt should make the small model write code"
    for t in ran:
        kinds = [s.kind for s in t.steps]
        i = kinds.index("code")
        assert kinds[i + 1] == "output" and t.steps[i + 1].status in ("ok", "error", "timeout")
        assert t.steps[i + 1].text.startswith(("```output\n", "\n```output\n"))
        assert len(t.token_ids) == len(t.mask) and 0 in t.mask  # tool output is masked out
        assert t.tokens == sum(t.mask)
    assert all(0 < t.tokens <= 200 for t in res.traces)
    assert res.correct is not None and res.stop_reason == "all_done"


async def test_same_seed_same_samples(vllm_backend) -> None:
    cfg = SolveConfig(samples=2, tir_ratio=0.0, seed=7, rollout=RolloutConfig(max_tokens=48, temperature=1.0))
    a = await solve(PROBLEM, vllm_backend, None, cfg)
    b = await solve(PROBLEM, vllm_backend, None, cfg)
    assert [t.completion for t in a.traces] == [t.completion for t in b.traces]
    assert a.traces[0].seed != a.traces[1].seed


class StopAtFirst:
    name = "stop-at-first"

    def decide(self, finished: Sequence[Trace], total: int, elapsed: float, budget: float | None) -> str | None:
        return "first done" if finished else None


async def test_policy_stop_aborts_the_rest_in_the_engine(vllm_backend) -> None:
    roll = RolloutConfig(max_tokens=2000, temperature=1.0)
    cfg = SolveConfig(samples=6, tir_ratio=0.0, seed=1, rollout=roll, concurrency=6)
    short = Problem(id="short", text="Say the number 7 and stop.")
    t0 = time.monotonic()
    res = await solve(short, vllm_backend, None, cfg, policy=StopAtFirst())
    assert res.stop_reason == "first done"
    aborted = [t for t in res.traces if t.finish == "aborted"]
    assert aborted and all(t.tokens < 2000 for t in aborted)
    # nothing left running in the engine once solve returned
    assert vllm_backend.engine.output_processor.get_num_unfinished_requests() == 0
    assert time.monotonic() - t0 < 600


def _solve_cli(*args: str) -> dict:
    r = subprocess.run([sys.executable, "-m", "tirmath", "solve", *args], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


def test_cli_solve_json_and_trace(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    out = _solve_cli(PROBLEM.text, "--answer", "44100", "--samples", "2", "--max-tokens", "96",
                     "--json", "--trace", str(trace), "--max-model-len", "2048")
    assert out["problem"]["answer"] == "44100" and out["correct"] in (True, False)
    assert [s["index"] for s in out["samples"]] == [0, 1]
    assert [s["mode"] for s in out["samples"]] == ["cot", "tir"]
    assert all(0 < s["tokens"] <= 96 for s in out["samples"])
    rows = [Trace.from_dict(json.loads(line)) for line in trace.read_text().splitlines()]
    assert [t.tokens for t in rows] == [s["tokens"] for s in out["samples"]]


@pytest.mark.server
def test_cli_solve_against_local_server(server_url: str, default_model_dir: Path) -> None:
    out = _solve_cli("--dataset", "aime2025", "--id", "2025-I-1", "--server", server_url,
                     "--model", str(default_model_dir), "--samples", "2", "--max-tokens", "96", "--json")
    assert out["problem"]["id"] == "2025-I-1" and out["problem"]["answer"] == "70"
    assert len(out["samples"]) == 2 and all(s["tokens"] > 0 for s in out["samples"])
    assert out["samples"][1]["mode"] == "tir" and out["correct"] in (True, False)
