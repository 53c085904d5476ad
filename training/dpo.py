"""Direct preference optimisation over TRL's DPOTrainer (the 2nd-place AIMO-2 recipe: SFT, then
DPO on pairs chosen by correctness, length and similarity; pairs come from training/data.py).

`recipe.beta` is DPO's beta. Not covered: tool-output masking (TRL's DPO has no per-token mask,
so tool output counts in both texts; see training/data.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.models import load_model, load_tokenizer, make_config, train_and_save


def run_dpo(recipe: Any) -> tuple[Path, dict[str, float]]:
    """Train; returns the saved model folder and the last logged metrics."""
    from trl import DPOConfig, DPOTrainer

    from training.data import build_dpo_dataset

    path, tokenizer, family = load_tokenizer(recipe)
    dataset = build_dpo_dataset(recipe, family)
    model = load_model(recipe, path)
    config = make_config(DPOConfig, recipe, beta=recipe.beta or 0.1, max_length=recipe.max_length)
    return train_and_save(DPOTrainer, recipe, config, model, dataset, tokenizer)
