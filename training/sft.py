"""Supervised fine-tuning over TRL's SFTTrainer (stage 1 of the Fast-Math recipe).

The data arrive tokenised (training/data.py: `input_ids` + `labels` with -100 on the prompt and
on tool output), so TRL trains exactly on the model's own tokens of the shortest correct traces.
Not covered: packing or sequence parallelism (pass them through `trl_args`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.models import load_model, load_tokenizer, make_config, train_and_save


def run_sft(recipe: Any) -> tuple[Path, dict[str, float]]:
    """Train; returns the saved model folder and the last logged metrics."""
    from trl import SFTConfig, SFTTrainer

    from training.data import build_sft_dataset

    path, tokenizer, family = load_tokenizer(recipe)
    dataset = build_sft_dataset(recipe, tokenizer, family)
    model = load_model(recipe, path)
    config = make_config(SFTConfig, recipe, max_length=recipe.max_length, dataset_num_proc=None,
                         packing=recipe.packing, packing_strategy=recipe.packing_strategy)
    return train_and_save(SFTTrainer, recipe, config, model, dataset, tokenizer)
