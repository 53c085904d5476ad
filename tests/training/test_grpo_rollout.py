"""AgentRollout (training/grpo_rollout.py) on a scripted engine with the default model's tokenizer:
the prompt the engine generates from is the dataset's prompt, tokenised as TRL tokenises it
(system prompt included), in both modes; CoT starts no kernels; a dataset prompt the rollout
would not render fails loud. The real engine and trainer: tests/training/test_vllm_rollout.py."""

from __future__ import annotations

import dataclasses

import pytest

from agent.prompts import FAST_MATH_GRPO_SYSTEM
from tests.fakes import FakePool, ScriptedBackend
from tests.training.test_vllm_rollout import easy_problems
from training.data import build_grpo_dataset
from training.grpo_rollout import AgentRollout
from training.recipe import load_recipe
from training.rollout_engine import RolloutEngine


@pytest.mark.parametrize("tir", [False, True])
def test_engine_prompt_is_the_dataset_prompt_trl_tokenises(tmp_path, smol_tokenizer, tir: bool) -> None:
    recipe = load_recipe("cpu_grpo_tir" if tir else "cpu_grpo",
                         {"data": easy_problems(tmp_path), "system_prompt": "fast-math-grpo"})
    ds, by_prompt = build_grpo_dataset(recipe, "small")
    prompts = [row["prompt"] for row in ds for _ in range(2)]  # TRL repeats each prompt per generation
    assert prompts[0][0] == {"role": "system", "content": FAST_MATH_GRPO_SYSTEM}
    be = ScriptedBackend(lambda prompt, g: "The answer is \\boxed{5}.<eos>", tokenizer=smol_tokenizer)
    ro = AgentRollout(by_prompt, recipe, smol_tokenizer, "small")
    try:
        ro.engine = RolloutEngine("scripted", be)
        if tir:
            ro._pool = FakePool()
        problems = [ro.problem_for(p) for p in prompts]
        traces = ro._run(ro._rollouts(problems, 0))
        out = ro.to_trl(problems, traces)
        kernels = ro._pool is not None
    finally:
        ro.close()
    # what GRPOTrainer._tokenize_prompts does with the dataset's prompts when it generates itself
    trl_ids = smol_tokenizer.apply_chat_template(conversation=prompts, add_generation_prompt=True, tokenize=True,
                                                 return_dict=True)["input_ids"]
    assert out["prompt_ids"] == trl_ids
    assert sorted(be.prompt_ids) == sorted(trl_ids)  # the ids the engine was asked to continue
    assert [t.mode for t in traces] == ["tir" if tir else "cot"] * len(prompts)
    assert kernels == tir  # CoT rollouts start no kernel pool
    assert all(t.prompt == "fast-math-grpo" for t in traces)


def test_a_dataset_prompt_the_rollout_would_not_render_fails_loud(tmp_path, smol_tokenizer) -> None:
    recipe = load_recipe("cpu_grpo", {"data": easy_problems(tmp_path), "system_prompt": "fast-math-grpo"})
    ds, by_prompt = build_grpo_dataset(recipe, "small")
    ro = AgentRollout(by_prompt, dataclasses.replace(recipe, system_prompt=""), smol_tokenizer, "small")
    try:
        with pytest.raises(RuntimeError, match="not the one the rollout generates from"):
            ro.problem_for(ds[0]["prompt"])
    finally:
        ro.close()
