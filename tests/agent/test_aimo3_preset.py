"""The AIMO3 gpt-oss settings as one preset of the config tree, and the AIMO3 time rule."""

from __future__ import annotations

import pytest

from agent.budget import ClampScheduler, make_scheduler
from agent.cli_solve import parse
from agent.errors import UserError


def test_preset_sets_the_aimo3_practice_and_flags_win() -> None:
    args, engine, solve, sandbox = parse(["--preset", "aimo3-gpt-oss", "What is 1+1?"])
    r = solve.rollout
    assert (r.prompt_family, r.reasoning_effort, r.temperature, r.min_p) == ("gpt-oss", "high", 1.0, 0.02)
    assert (r.max_tool_calls, r.max_tokens, engine.max_model_len, engine.kv_cache_dtype) == (100, 65536, 65536, "fp8")
    assert (solve.samples, solve.tir_ratio, solve.policy, solve.weight) == (8, 1.0, "agree:4", "entropy")
    assert sandbox.kernels == 2 * solve.samples
    _, _, solve, _ = parse(["--preset", "aimo3-gpt-oss", "--reasoning-effort", "medium", "--samples", "4", "x"])
    assert (solve.rollout.reasoning_effort, solve.samples) == ("medium", 4)


def test_eval_takes_the_preset_too(tmp_path) -> None:
    from agent.cli_args import ConfigParser
    from agent.config import SolveConfig
    from evals.cli import BATCH_GROUPS

    g = ConfigParser("tirmath eval", BATCH_GROUPS).parse(["--preset", "aimo3-gpt-oss", "--dataset", "aime2025",
                                                          "--out", str(tmp_path / "run"), "--kaggle",
                                                          "--scheduler", "aimo3"])
    assert g[SolveConfig].rollout.prompt_family == "gpt-oss"


def test_aimo3_time_rule() -> None:
    s = make_scheduler("aimo3:300:900", 5 * 3600.0, 50)
    assert isinstance(s, ClampScheduler)
    assert s.budget_for(0, 50, 5 * 3600.0) == 900  # plenty left: capped at H
    assert s.budget_for(40, 10, 3300.0) == 600  # 3300 - 9 x 300
    assert s.budget_for(45, 5, 1000.0) == 300  # behind schedule: never below B...
    assert s.budget_for(49, 1, 200.0) == 200  # ...but never past the time left
    d = make_scheduler("aimo3", 3600.0, 10)  # defaults from the even share of 360 s
    assert d.budget_for(0, 10, 3600.0) == pytest.approx(900.0)
    for bad in ("aimo3:0", "aimo3:500:100", "aimo3:x", "aimo3:1:2:3"):
        with pytest.raises(UserError, match="aimo3"):
            make_scheduler(bad, 3600.0, 10)
