"""Loading the policy, building the TRL config common to every stage, and saving what comes out.

`load_tokenizer` / `load_model` resolve the recipe's model the way the agent does (agent.models.resolve_model:
null = the built-in default) and give the tokenizer (pad token set), the prompt family and the
model. `trl_kwargs` maps recipe fields to the TrainingArguments fields every TRL config shares.
`save_final` writes a folder `tirmath solve --model DIR` loads: weights, config, generation
config and tokenizer; a LoRA adapter is merged into the base weights first (unless the recipe
says `merge_lora: false`, in which case only the adapter is saved).

Not covered: the stage-specific TRL options (sft.py, grpo.py, dpo.py) or multi-GPU launch
(accelerate / DeepSpeed read their own config files; see training/recipes/README.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.errors import UserError


def resolve_family(recipe: Any, model_path: str) -> str:
    from agent.prompts import FAMILIES, guess_family

    if recipe.prompt_family == "auto":
        return guess_family(model_path)
    if recipe.prompt_family not in FAMILIES:
        raise UserError(f"field 'prompt_family' must be auto or one of {', '.join(FAMILIES)}")
    return str(recipe.prompt_family)


def load_tokenizer(recipe: Any) -> tuple[str, Any, str]:
    """(model path, tokenizer with a pad token, prompt family): cheap, so data errors come first."""
    from transformers import AutoTokenizer

    from agent.models import resolve_model

    path = resolve_model(recipe.model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise UserError(f"model {path!r}: cannot load its tokenizer ({e})") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(tokenizer, "chat_template", None) is None:
        raise UserError(f"model {path!r}: the tokenizer has no chat template (needed for the agent's prompts)")
    return path, tokenizer, resolve_family(recipe, path)


def load_model(recipe: Any, path: str) -> Any:
    """The model at `path`, in float32 (bfloat16 when the recipe says bf16)."""
    import torch
    from transformers import AutoModelForCausalLM

    try:
        return AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16 if recipe.bf16 else torch.float32)
    except (OSError, ValueError) as e:
        raise UserError(f"model {path!r} cannot be loaded ({e})") from None


def peft_config(recipe: Any) -> Any:
    """A peft LoraConfig when the recipe trains LoRA, else None (full-parameter)."""
    if not recipe.lora:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=recipe.lora_r,
        lora_alpha=recipe.lora_alpha,
        lora_dropout=recipe.lora_dropout,
        target_modules=list(recipe.lora_targets),
        task_type="CAUSAL_LM",
    )


def trl_kwargs(recipe: Any) -> dict[str, Any]:
    """TrainingArguments fields shared by SFTConfig, GRPOConfig and DPOConfig."""
    kw: dict[str, Any] = {
        "output_dir": recipe.output_dir,
        "learning_rate": recipe.learning_rate,
        "num_train_epochs": recipe.num_train_epochs,
        "max_steps": recipe.max_steps,
        "per_device_train_batch_size": recipe.per_device_train_batch_size,
        "gradient_accumulation_steps": recipe.gradient_accumulation_steps,
        "warmup_steps": recipe.warmup_ratio,
        "lr_scheduler_type": recipe.lr_scheduler_type,
        "weight_decay": recipe.weight_decay,
        "max_grad_norm": recipe.max_grad_norm,
        "bf16": recipe.bf16,
        "use_cpu": recipe.use_cpu,
        "gradient_checkpointing": recipe.gradient_checkpointing,
        "seed": recipe.seed,
        "data_seed": recipe.seed,
        "logging_steps": recipe.logging_steps,
        "save_strategy": "steps" if recipe.save_steps > 0 else "no",
        "report_to": "none",
        "disable_tqdm": True,
    }
    if recipe.save_steps > 0:
        kw["save_steps"] = recipe.save_steps
    if recipe.optim:
        kw["optim"] = recipe.optim
    if recipe.deepspeed:
        if not Path(recipe.deepspeed).is_file():
            raise UserError(f"field 'deepspeed': no file {recipe.deepspeed!r}")
        kw["deepspeed"] = recipe.deepspeed
    return kw


def make_config(cls: Any, recipe: Any, **stage: Any) -> Any:
    """A TRL config of class `cls`; a bad `trl_args` key is a UserError naming it."""
    kw = {**trl_kwargs(recipe), **stage, **recipe.trl_args}
    try:
        return cls(**kw)
    except TypeError as e:
        raise UserError(f"field 'trl_args': {e}") from None
    except ValueError as e:
        raise UserError(f"recipe rejected by {cls.__name__}: {e}") from None


def save_final(trainer: Any, recipe: Any, tokenizer: Any) -> Path:
    """Save the trained model so `tirmath solve --model DIR` loads it; returns DIR."""
    out = Path(recipe.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = trainer.accelerator.unwrap_model(trainer.model) if hasattr(trainer, "accelerator") else trainer.model
    if hasattr(model, "peft_config"):
        if not recipe.merge_lora:
            model.save_pretrained(str(out))
            tokenizer.save_pretrained(str(out))
            return out
        model = model.merge_and_unload()
    model.config.use_cache = True
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    return out


def train_and_save(trainer_cls: Any, recipe: Any, config: Any, model: Any, dataset: Any,
                   tokenizer: Any) -> tuple[Path, dict[str, float]]:
    """Build a TRL trainer of the usual shape, train, save the final folder; (folder, metrics)."""
    trainer = trainer_cls(
        model=model,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config(recipe),
    )
    result = trainer.train()
    out = save_final(trainer, recipe, tokenizer)
    return out, {"train_loss": float(result.training_loss), "rows": float(len(dataset))}
