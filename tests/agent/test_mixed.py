"""Sample planning with mixed prompts and TIP (plan_samples), their effect on the requests a
backend sees (scripted backend), the trace fields, run-metric splits, and the CLI parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import SolveConfig
from agent.errors import UserError
from agent.prompt_variants import REGISTRY, load_variant, parse_prompts
from agent.solve import plan_modes, plan_samples, solve
from agent.tip import KEY_ALPHA, KEY_SINCE, TipSettings
from agent.types import Problem, Trace
from tests.fakes import FakePool, ScriptedBackend

P = Problem(id="p", text="2+3?", answer="5")


def test_plan_spreads_prompts_within_modes_and_tip_within_groups() -> None:
    plans = plan_samples(8, 0.5, n_prompts=2, tip_ratio=0.5)
    assert [p.mode for p in plans] == plan_modes(8, 0.5)
    for mode in ("cot", "tir"):
        mine = [p for p in plans if p.mode == mode]
        assert sorted(p.prompt for p in mine) == [0, 0, 1, 1]
        for k in (0, 1):  # each (mode, prompt) group gets one TIP sample of two
            assert sorted(p.tip for p in mine if p.prompt == k) == [False, True]
    assert not any(p.tip for p in plan_samples(4, 0.5, 2, 0.0))
    assert all(p.tip and p.prompt == 0 for p in plan_samples(3, 1.0, 1, 1.0))


def test_prompt_variants_by_name_and_file(tmp_path: Path) -> None:
    assert parse_prompts(None) == () and parse_prompts("default,careful") == (REGISTRY["default"], REGISTRY["careful"])
    f = tmp_path / "mine.txt"
    f.write_text("Solve it cleverly. Box the answer.")
    v = load_variant(str(f))
    assert v.name == "mine" and v.cot == "Solve it cleverly. Box the answer." and "```python" in (v.tir or "")
    for bad in ("nosuch", "careful,careful", str(tmp_path / "missing.txt")):
        with pytest.raises(UserError):
            parse_prompts(bad)


async def test_solve_sends_tip_and_prompts_per_plan() -> None:
    be = ScriptedBackend(lambda prompt, g: "\\boxed{5}<eos>")
    cfg = SolveConfig(samples=4, tir_ratio=0.0, tip="on", tip_ratio=0.5, prompts="default,verify")
    res = await solve(P, be, FakePool(), cfg)
    plans = plan_samples(4, 0.0, 2, 0.5)
    assert [(t.tip, t.prompt) for t in res.traces] == [(p.tip, ["default", "verify"][p.prompt]) for p in plans]
    assert {(t.tip, t.prompt) for t in res.traces} == {(True, "default"), (False, "default"),
                                                        (True, "verify"), (False, "verify")}
    for _prompt, g in be.requests:
        extra = dict(g.extra_args or ())
        if extra:
            assert extra[KEY_ALPHA] == 3.0 and extra[KEY_SINCE] == 0
    tipped = [g for _, g in be.requests if g.extra_args]
    verify = [p for p, _ in be.requests if "different method" in p]
    assert len(tipped) == 2 and len(verify) == 2
    assert res.to_dict()["samples"][0].keys() >= {"tip", "prompt"}


@pytest.mark.parametrize("mode", ["cot", "tir"])
async def test_a_system_variant_renders_as_the_system_argument(mode: str) -> None:
    from agent.config import RolloutConfig
    from agent.prompts import FAST_MATH_GRPO_SYSTEM, render, system_variant
    from agent.rollout import rollout

    assert system_variant("") is None and system_variant("Be brief.").name == "system"
    v = system_variant("fast-math-grpo")
    assert v is not None and v.name == "fast-math-grpo"
    for family in ("small", "r1", "qwen"):
        assert render(P, mode, family, variant=v) == render(P, mode, family, "fast-math-grpo")
    be = ScriptedBackend(lambda prompt, g: "\\boxed{5}<eos>")
    t = await rollout(P, be, FakePool(), mode, RolloutConfig(prompt_family="small"), variant=v)
    (prompt, _), = be.requests
    assert prompt.startswith(f"<system>{FAST_MATH_GRPO_SYSTEM}\n<user>2+3?") and t.prompt == "fast-math-grpo"


async def test_tip_window_carries_over_tool_rounds() -> None:
    replies = iter(["ab```python\nprint(1)\n```\n", "\\boxed{1}<eos>"])
    be = ScriptedBackend(lambda prompt, g: next(replies))
    cfg = SolveConfig(samples=1, tir_ratio=1.0, tip="alpha=3", tip_words="zz")
    await solve(P, be, FakePool(), cfg)
    first, second = (dict(g.extra_args or ()) for _, g in be.requests)
    n = len("ab```python\nprint(1)\n```\n")
    assert first[KEY_SINCE] == 0 and second[KEY_SINCE] == n  # model tokens of round 1 (no tool output)


def test_trace_round_trips_tip_and_prompt() -> None:
    t = Trace("p", 0, 1, "cot", (), None, "eos", 3, 0, tip=True, prompt="verify")
    assert Trace.from_dict(t.to_dict()) == t
    old = t.to_dict()
    del old["tip"], old["prompt"]
    assert Trace.from_dict(old).tip is False and Trace.from_dict(old).prompt == "default"


def test_metrics_split_by_tip_and_prompt(tmp_path: Path) -> None:
    from evals.metrics import run_metrics
    from evals.store import RunStore, sample_record

    store = RunStore(str(tmp_path / "run"), {"x": 1}, {"problems": ["p"]})
    for i, (tip, prompt, ans) in enumerate([(True, "a", "5"), (False, "a", "7"), (True, "b", "5"), (False, "b", "5")]):
        from agent.types import Answer

        tr = Trace("p", i, i, "cot", (), Answer(ans, int(ans), "boxed"), "answer", 10 * (i + 1), 0, tip=tip,
                   prompt=prompt)
        store.add_sample(sample_record(P, tr))
    m = run_metrics(store.data)
    store.close()
    assert m.group("tip").pass1 == 1.0 and m.group("no-tip").pass1 == 0.5  # type: ignore[union-attr]
    assert m.group("prompt:a").pass1 == 0.5 and m.group("prompt:b").pass1 == 1.0  # type: ignore[union-attr]


def test_config_tree_flags() -> None:
    from agent.cli_args import ConfigParser
    from agent.config import RolloutConfig
    from agent.tip import parse_tip

    parser = ConfigParser("t", (RolloutConfig, SolveConfig))
    cfg = parser.parse(["--tip", "alpha=2", "--tip-words", "wait", "--tip-ratio", "0.5",
                        "--prompts", "default,careful"])[SolveConfig]
    assert parse_tip(cfg.tip, cfg.tip_words) == TipSettings(2.0, 600, ("wait",)) and cfg.tip_ratio == 0.5
    assert [v.name for v in parse_prompts(cfg.prompts)] == ["default", "careful"]
    assert parse_tip(parser.parse(["--tip", "on"])[SolveConfig].tip) == TipSettings()
    from agent.config import EngineConfig

    with pytest.raises(UserError, match="speculative"):
        ConfigParser("t", (EngineConfig, RolloutConfig, SolveConfig)).parse(
            ["--tip", "on", "--speculative-config", '{"method": "ngram", "num_speculative_tokens": 2}'])
    for bad in (["--tip-ratio", "2"], ["--tip", "alpha=q"], ["--prompts", "zzz"], ["--tip-words", "w"],
                ["--tip", "on", "--tip-words", " , "]):
        with pytest.raises(UserError):
            parser.parse(bad)
