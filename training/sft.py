"""Supervised fine-tuning over TRL's SFTTrainer (stage 1 of the Fast-Math recipe).

The data arrive tokenised (training/data.py: `input_ids` + `labels` with -100 on the prompt and
on tool output), so TRL trains exactly on the model's own tokens of the shortest correct traces.
Not covered: packing or sequence parallelism (pass them through `trl_args`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.models import load_model, load_tokenizer, make_config, peft_config, save_final


def run_sft(recipe: Any) -> tuple[Path, dict[str, float]]:
    """Train; returns the saved model folder and the last logged metrics."""
    from trl import SFTConfig, SFTTrainer

    from training.data import build_sft_dataset

    path, tokenizer, family = load_tokenizer(recipe)
    dataset = build_sft_dataset(recipe, tokenizer, family)
    model = load_model(recipe, path)
    config = make_config(SFTConfig, recipe, max_length=recipe.max_length, dataset_num_proc=None)
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config(recipe),
    )
    result = trainer.train()
    out = save_final(trainer, recipe, tokenizer)
    return out, {"train_loss": float(result.training_loss), "rows": float(len(dataset))}
