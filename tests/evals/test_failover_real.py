"""Failover on real servers: two local vLLM servers, one SIGKILLed mid-run; the eval finishes with
every sample stored once and none in error, and the log names the dead server."""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from agent.backends.failover import FailoverBackend
from agent.config import RolloutConfig, SolveConfig
from agent.types import Problem
from evals.runner import RunConfig, open_store, run_problems
from evals.store import RECORDS, read_run
from tests.conftest import _stop, _wait_ready, start_vllm_server

pytestmark = [pytest.mark.server, pytest.mark.slow]

PROBLEMS = [Problem(f"q{i}", f"What is {i} times {i + 3}? Explain step by step.", str(i * (i + 3)))
            for i in range(1, 5)]


@pytest.fixture
def two_servers(default_model_dir: Path) -> Any:
    started = [start_vllm_server(default_model_dir) for _ in range(2)]
    try:
        for proc, url, log in started:
            _wait_ready(proc, url, log)
        yield started
    finally:
        for proc, _, log in started:
            _stop(proc)
            log.unlink(missing_ok=True)


async def test_sigkilled_server_costs_no_samples(two_servers: Any, tmp_path: Path, caplog: Any) -> None:
    caplog.set_level(logging.WARNING, logger="tirmath.failover")
    (_, url_a, _), (victim, url_b, _) = two_servers
    backend = await FailoverBackend.open([url_a, url_b], retry_after=3600)
    roll = RolloutConfig(max_tokens=160, temperature=0.8)
    cfg = RunConfig(solve=SolveConfig(samples=3, tir_ratio=0.0, seed=2, rollout=roll), concurrency=2)
    store = open_store(str(tmp_path / "run"), PROBLEMS, cfg, "t")
    try:
        run = asyncio.create_task(run_problems(PROBLEMS, [backend], None, cfg, store))
        deadline = time.monotonic() + 900
        while not all(m.outstanding for m in backend.members):  # both servers are generating
            assert time.monotonic() < deadline and not run.done()
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)
        os.killpg(victim.pid, signal.SIGKILL)
        await run
    finally:
        store.close()
        await backend.close()
    keys = collections.Counter((d["trace"]["problem_id"], d["trace"]["index"]) for d in map(json.loads, (tmp_path / "run" / RECORDS)
                                                                         .read_text().splitlines())
                               if d["kind"] == "sample")
    assert sorted(keys) == [(p.id, i) for p in PROBLEMS for i in range(3)] and set(keys.values()) == {1}
    data = read_run(tmp_path / "run")
    assert [r.finish for r in data.all_samples() if r.finish == "error"] == []
    assert len(data.problems) == len(PROBLEMS)
    down = [r.getMessage() for r in caplog.records if "is down" in r.getMessage()]
    assert len(down) == 1 and down[0].startswith(f"server {url_b} is down")
    assert backend.events[0].url == url_b and backend.events[0].resumed  # its requests went on elsewhere
