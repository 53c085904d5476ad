"""Linear merge of two checkpoints of one architecture (the AIMO-2 winners' CoT 0.3 / TIR 0.7 mix).

`merge_checkpoints(a, b, (wa, wb), out)` loads both HF folders, checks they are the same
architecture with the same parameter names and shapes (else a `UserError` naming the first
mismatch), writes wa*A + wb*B in A's dtype with A's config, generation config and tokenizer,
so `tirmath solve --model OUT` loads it. Weights need not sum to 1 (a warning-free choice left
to the user). Not covered: TIES/DARE/SLERP merges, LoRA adapters (merge them on save first),
or streaming shard by shard (both models are held in memory).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.errors import UserError


def _load(path: str) -> tuple[Any, Any]:
    from transformers import AutoConfig, AutoModelForCausalLM

    p = Path(path).expanduser()
    if not (p / "config.json").is_file():
        raise UserError(f"{path}: not a model folder (no config.json)")
    config = AutoConfig.from_pretrained(str(p))
    try:
        model = AutoModelForCausalLM.from_pretrained(str(p), dtype="auto")
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot load the model ({e})") from None
    return config, model


def _check_same(a: str, b: str, ca: Any, cb: Any, sa: dict[str, Any], sb: dict[str, Any]) -> None:
    arch_a, arch_b = getattr(ca, "architectures", None), getattr(cb, "architectures", None)
    if ca.model_type != cb.model_type or arch_a != arch_b:
        raise UserError(f"cannot merge {a} ({ca.model_type}, {arch_a}) with {b} ({cb.model_type}, {arch_b}): "
                        "different architectures")
    only = sorted(set(sa) ^ set(sb))
    if only:
        raise UserError(f"cannot merge {a} with {b}: parameter {only[0]!r} is in only one of them")
    for k in sa:
        if sa[k].shape != sb[k].shape:
            raise UserError(f"cannot merge {a} with {b}: parameter {k!r} has shape "
                            f"{tuple(sa[k].shape)} vs {tuple(sb[k].shape)}")


def merge_checkpoints(a: str, b: str, weights: tuple[float, float], out: str) -> Path:
    """Write wa*A + wb*B to `out`; returns the output folder."""
    import torch
    from transformers import AutoTokenizer

    ca, ma = _load(a)
    cb, mb = _load(b)
    sa, sb = ma.state_dict(), mb.state_dict()
    _check_same(a, b, ca, cb, sa, sb)
    wa, wb = weights
    merged = {}
    with torch.no_grad():
        for k, ta in sa.items():
            if ta.is_floating_point():
                merged[k] = (wa * ta.float() + wb * sb[k].float()).to(ta.dtype)
            else:
                merged[k] = ta.clone()
    ma.load_state_dict(merged)
    dest = Path(out).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    ma.save_pretrained(str(dest), safe_serialization=True)
    try:
        AutoTokenizer.from_pretrained(a).save_pretrained(str(dest))
    except (OSError, ValueError) as e:
        raise UserError(f"{a}: no tokenizer to copy into the merged folder ({e})") from None
    return dest
