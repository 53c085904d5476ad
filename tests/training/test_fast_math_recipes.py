"""Both Fast-Math stages field by field against the reference code (issue 15).

The expected values are the reference's (analokmaus/kaggle-aimo2-fast-math-r1,
experiments/train_first_stage.py and train_second_stage.py), each with the line it comes from;
the differences that remain are stated in training/recipes/README.md. The TRL configs built from
the recipes carry them (min_p included), and so does the TIR rollout's sampling.
"""

from __future__ import annotations

import pytest

from agent.errors import UserError
from agent.prompts import FAST_MATH_GRPO_SYSTEM, FAST_MATH_SFT_SYSTEM, render
from agent.types import Problem
from training.recipe import load_recipe

STAGE1 = {  # train_first_stage.py
    "model": "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B",  # CFG.MODEL_PATH
    "seed": 2025,  # CFG.SEED
    "learning_rate": 1e-5,  # CFG.LR
    "lr_scheduler_type": "cosine",
    "warmup_ratio": 0.0,  # TrainingArguments default
    "optim": "paged_adamw_8bit",
    "num_train_epochs": 20.0,  # CFG.NUM_TRAIN_EPOCHS
    "per_device_train_batch_size": 1,  # CFG.BATCH_SIZE
    "gradient_accumulation_steps": 8,  # CFG.GRAD_ACCUM
    "max_length": 24000,  # CFG.MAX_SEQ_LENGTH
    "packing": True,  # CFG.PACKING
    "bf16": True,
    "gradient_checkpointing": True,  # CFG.GRAD_CHECKPOINT
    "save_steps": 50,  # CFG.SAVE_STEPS
    "system_prompt": "fast-math-sft",  # create_prompt's system prompt
}
STAGE2 = {  # train_second_stage.py
    "model": "runs/fast_math_sft/checkpoint-350",  # CFG.MODEL_PATH = .../checkpoint-350
    "seed": 2025,
    "learning_rate": 4e-6,  # CFG.LR
    "lr_scheduler_type": "cosine",
    "warmup_ratio": 0.0,
    "optim": "paged_adamw_8bit",
    "num_train_epochs": 1.0,  # CFG.NUM_TRAIN_EPOCHS (its trainer ignores CFG.MAX_STEPS)
    "max_steps": -1,
    "per_device_train_batch_size": 2,  # CFG.BATCH_SIZE
    "gradient_accumulation_steps": 8,  # CFG.GRAD_ACCUM
    "num_generations": 8,  # CFG.NUM_GENERATIONS
    "max_completion_length": 16384,  # CFG.MAX_COMPLETION_LENGTH
    "temperature": 1.0, "top_p": 0.9, "min_p": 0.05,  # vLLMConfig sampling_params_dict
    "beta": 0.04,  # CFG.BETA
    "bf16": True, "gradient_checkpointing": True,
    "save_steps": 5,  # CFG.SAVE_STEPS
    "rewards": ["format", "cosine", "length"],  # CFG.reward_funcs = ['format2', 'cosine', 'length']
    "reward_weights": [1.0, 1.0, 1.0],
    "format_pattern": r"^.*?oxed{(.*?)}.*?</think>.*?$",  # format_reward2
    "length_unit": "chars",  # len(content)
    "cosine_max_len": 30000,  # get_cosine_scaled_reward(max_len=30000)
    "cosine_correct": [1.0, 0.1], "cosine_wrong": [-1.0, -0.1],
    "length_group": "call",  # len_reward over the whole call
    "system_prompt": "fast-math-grpo",
}


@pytest.mark.parametrize("name, expected", [("fast_math_sft", STAGE1), ("fast_math_grpo", STAGE2)])
def test_stage_fields_match_the_reference(name: str, expected: dict) -> None:
    r = load_recipe(name)
    got = {k: getattr(r, k) for k in expected}
    assert got == expected
    assert r.trl_args.get("gradient_checkpointing_kwargs") == {"use_reentrant": False}


def test_stage2_call_is_two_prompts_of_eight() -> None:
    r = load_recipe("fast_math_grpo")
    # TRL scores one process's generation batch (per-device batch x accumulation) in one call
    assert r.per_device_train_batch_size * r.gradient_accumulation_steps == 2 * r.num_generations


def test_system_prompts_are_the_references() -> None:
    assert FAST_MATH_SFT_SYSTEM == "Please reason step by step, and put your final answer within \\boxed{{}}."
    assert FAST_MATH_GRPO_SYSTEM.startswith("You are a helpful and harmless assistant. You are Qwen developed by Alibaba.")
    msgs = render(Problem("p", "What is 6*7?"), "cot", "r1", "fast-math-grpo")
    assert msgs == [{"role": "system", "content": FAST_MATH_GRPO_SYSTEM}, {"role": "user", "content": "What is 6*7?"}]
    assert render(Problem("p", "What is 6*7?"), "cot", "r1")[0]["role"] == "user"  # r1 default: no system turn


@pytest.mark.slow
def test_trl_configs_carry_the_stage_fields(tmp_path) -> None:
    from trl import SFTConfig

    from training.grpo import grpo_config
    from training.models import make_config

    cpu = {"bf16": False, "use_cpu": True, "optim": "adamw_torch", "output_dir": str(tmp_path), "trl_args": {}}
    g = grpo_config(load_recipe("fast_math_grpo", cpu))
    assert (g.min_p, g.top_p, g.temperature, g.beta, g.loss_type) == (0.05, 0.9, 1.0, 0.04, "bnpo")
    assert (g.per_device_train_batch_size, g.gradient_accumulation_steps, g.num_generations) == (2, 8, 8)
    assert (g.max_completion_length, g.seed, g.learning_rate, g.optim) == (16384, 2025, 4e-6, "adamw_torch")
    assert g.steps_per_generation == 8  # a process's generation batch: 2 x 8 = 16 completions, 2 prompts
    s1 = load_recipe("fast_math_sft", cpu)
    s = make_config(SFTConfig, s1, max_length=s1.max_length, packing=s1.packing, packing_strategy=s1.packing_strategy)
    assert (s.packing, s.packing_strategy, s.max_length, s.num_train_epochs) == (True, "wrapped", 24000, 20.0)
    assert load_recipe("cpu_grpo").min_p == 0.0 and grpo_config(load_recipe("cpu_grpo")).min_p is None


def test_tir_rollout_samples_with_min_p() -> None:
    from training.grpo_rollout import AgentRollout

    r = load_recipe("cpu_grpo_tir", {"min_p": 0.05})
    rollout = AgentRollout({}, r, tokenizer=None, family="small")
    try:
        assert rollout.config.min_p == 0.05
    finally:
        rollout.close()


@pytest.mark.parametrize("override, message", [
    ({"length_unit": "words"}, "length_unit"),
    ({"length_group": "batch"}, "length_group"),
    ({"format_pattern": "(unclosed"}, "format_pattern"),
    ({"min_p": 1.5}, "min_p"),
    ({"length_unit": "chars", "cosine_max_len": 0}, "cosine_max_len"),
])
def test_bad_reward_fields_are_one_line(override: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        load_recipe("fast_math_grpo", override)


@pytest.mark.slow
@pytest.mark.train
def test_sft_with_packing_and_the_reference_system_prompt_trains(tmp_path, tiny_dir, data_dir) -> None:
    """Stage 1's packing (wrapped, as TRL 0.15 packed) and system prompt run for real on the CPU."""
    import math

    from training.sft import run_sft

    r = load_recipe("cpu_sft", {"model": str(tiny_dir), "data": str(data_dir / "tir_examples.jsonl"),
                                "output_dir": str(tmp_path / "sft"), "max_length": 256, "max_rows": 4,
                                "max_steps": 1, "packing": True, "packing_strategy": "wrapped",
                                "system_prompt": "fast-math-sft"})
    _, metrics = run_sft(r)
    assert math.isfinite(metrics["train_loss"]) and metrics["rows"] == 4
