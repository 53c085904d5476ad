"""GRPO over TRL's GRPOTrainer (stage 2 of the Fast-Math recipe), plain or TIR-aware.

The recipe's `rollout_backend` (training/rollout_engine.py `choose_backend`) picks the generator.
On tirmath's own vLLM engine (in process, or a vLLM server) the rollouts go through the agent's
loop (training/grpo_rollout.py, TRL's `rollout_func`), with the trainer's weights pushed in after
each optimizer step: TIR-aware (`tir: true`: the TIR loop and sandbox, tool-output tokens masked
out of the loss) or plain (`tir: false`: CoT, one generation per completion, no kernels). Plain
GRPO on `transformers` (or `auto` with no vLLM, or with `use_vllm` in `trl_args`) uses TRL's own
generation (transformers on the CPU; TRL's vLLM modes on a GPU box, which need a vLLM inside
TRL's range: the `gpu-train` extra); TIR on `transformers` generates with the live policy.
Both build their prompts from the agent's templates with the recipe's `system_prompt`
(training/data.py). Rewards come from training/rewards.py, weighted by `reward_weights`.

Not covered: reward models.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from training.models import load_model, load_tokenizer, make_config, peft_config, save_final
from training.rewards import make_rewards


class Timed:
    """Wraps reward functions to add up the seconds spent scoring (read by training.bench)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, fn: Callable[..., list[float]]) -> Callable[..., list[float]]:
        def timed(*args: Any, **kwargs: Any) -> list[float]:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        timed.__name__ = fn.__name__
        return timed


def grpo_config(recipe: Any) -> Any:
    """TRL's GRPOConfig from the recipe (sampling, KL, loss, reward weights and the shared fields)."""
    from trl import GRPOConfig

    return make_config(
        GRPOConfig,
        recipe,
        num_generations=recipe.num_generations,
        max_completion_length=recipe.max_completion_length,
        temperature=recipe.temperature,
        top_p=recipe.top_p,
        min_p=recipe.min_p or None,
        beta=recipe.beta,
        loss_type=recipe.loss_type,
        reward_weights=list(recipe.reward_weights) or None,
    )


def build_grpo(recipe: Any, callbacks: list[Any] | None = None) -> tuple[Any, Any, Any, Timed]:
    """(trainer, tokenizer, AgentRollout or None when TRL generates, scoring timer), ready to `train()`."""
    from trl import GRPOTrainer

    from training.data import build_grpo_dataset
    from training.rollout_engine import choose_backend

    engine_kind = choose_backend(recipe)
    path, tokenizer, family = load_tokenizer(recipe)
    dataset, by_prompt = build_grpo_dataset(recipe, family)
    model = load_model(recipe, path)
    scoring = Timed()
    rewards: list[Any] = [scoring.wrap(f) for f in make_rewards(recipe)]
    config = grpo_config(recipe)
    rollout = None
    if engine_kind != "trl":
        from training.grpo_rollout import AgentRollout

        rollout = AgentRollout(by_prompt, recipe, tokenizer, family, engine_kind=engine_kind, model_path=path)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=rewards,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config(recipe),
        rollout_func=rollout,
        callbacks=callbacks,
    )
    return trainer, tokenizer, rollout, scoring


def run_grpo(recipe: Any) -> tuple[Path, dict[str, float]]:
    """Train; returns the saved model folder and summary metrics."""
    trainer, tokenizer, rollout, _ = build_grpo(recipe)
    try:
        result = trainer.train()
    finally:
        if rollout is not None:
            rollout.close()
    out = save_final(trainer, recipe, tokenizer)
    return out, {"train_loss": float(result.training_loss)}
