"""Real TRL trainers on the CPU, a few steps each: SFT (full and LoRA), plain GRPO, TIR-aware
GRPO with real sandbox kernels, DPO; outputs reload in the agent's transformers engine."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from agent.backends import open_backend
from agent.backends.base import GenParams
from training.recipe import load_recipe

pytestmark = [pytest.mark.train, pytest.mark.slow]

EASY = [("e1", "What is 2+3?", "5"), ("e2", "What is 4*6?", "24"), ("e3", "What is 17*23?", "391"),
        ("e4", "What is 10-7?", "3")]


def weights(folder: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


def moved(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> float:
    common = [k for k in before if k in after]
    assert common, "no common parameter names"
    return max((before[k].float() - after[k].float()).abs().max().item() for k in common)


async def generates(folder: Path) -> str:
    """Load a saved folder in the agent's transformers engine and generate a few tokens."""
    be = await open_backend(model=str(folder), engine="hf")
    try:
        ids = be.tokenizer.encode("1 + 1 =", add_special_tokens=False)
        text, n = "", 0
        async for ch in be.stream(ids, GenParams(max_tokens=4, temperature=0.0), "reload"):
            text += ch.text
            n += len(ch.token_ids)
        assert n >= 1
        return text
    finally:
        await be.close()


def easy_problems(tmp_path: Path) -> str:
    path = tmp_path / "easy.jsonl"
    path.write_text("".join(json.dumps({"id": i, "problem": q, "answer": a}) + "\n" for i, q, a in EASY))
    return str(path)


async def test_sft_full_tiny_then_reload(tmp_path, tiny_dir, data_dir):
    from training.sft import run_sft

    out = tmp_path / "sft"
    r = load_recipe("cpu_sft", {"model": str(tiny_dir), "data": str(data_dir / "tir_examples.jsonl"),
                                "output_dir": str(out), "max_length": 384, "max_rows": 4, "max_steps": 3,
                                "learning_rate": 1e-3})
    saved, metrics = run_sft(r)
    assert saved == out and math.isfinite(metrics["train_loss"]) and metrics["rows"] == 4
    assert moved(weights(tiny_dir), weights(out)) > 1e-4
    await generates(out)


async def test_sft_lora_default_model_merged(tmp_path, smol_dir, data_dir):
    from training.sft import run_sft

    out = tmp_path / "lora"
    r = load_recipe("cpu_sft", {"data": str(data_dir / "tir_examples.jsonl"), "output_dir": str(out),
                                "max_length": 512, "max_rows": 1, "max_steps": 1, "lora": True,
                                "learning_rate": 1e-2, "per_device_train_batch_size": 1})
    _, metrics = run_sft(r)
    assert math.isfinite(metrics["train_loss"])
    after = weights(out)
    assert not any("lora" in k for k in after), "the adapter is merged into plain weights"
    before = weights(smol_dir)
    q = next(k for k in before if k.endswith("q_proj.weight"))
    assert (before[q] - after[q]).abs().max().item() > 0  # LoRA target changed
    mlp = next(k for k in before if k.endswith("mlp.down_proj.weight"))
    assert torch.equal(before[mlp], after[mlp])  # non-target left alone
    await generates(out)


def test_grpo_plain_default_model(tmp_path):
    from training.grpo import build_grpo
    from training.models import save_final

    out = tmp_path / "grpo"
    r = load_recipe("cpu_grpo", {"data": easy_problems(tmp_path), "output_dir": str(out), "max_steps": 1,
                                 "max_completion_length": 24, "learning_rate": 1e-4})
    trainer, tok, rollout, scoring = build_grpo(r)
    assert rollout is None
    before = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert logs and all(math.isfinite(h["loss"]) for h in logs)
    assert any(f"rewards/{n}/mean" in logs[0] for n in ("accuracy_reward", "cosine"))
    assert scoring.seconds > 0
    assert moved(before, dict(trainer.model.named_parameters())) > 0
    save_final(trainer, r, tok)
    assert (out / "config.json").is_file() and (out / "tokenizer_config.json").is_file()


def test_grpo_tir_masks_tool_output(tmp_path):
    """TIR rollouts through real kernels; TRL's loss mask is 0 exactly on tool-output tokens."""
    from training.grpo import build_grpo

    r = load_recipe("cpu_grpo_tir", {"data": easy_problems(tmp_path), "output_dir": str(tmp_path / "tir"),
                                     "max_rows": 1, "max_completion_length": 40, "temperature": 0.7,
                                     "num_generations": 2, "per_device_train_batch_size": 2,
                                     "sandbox_isolation": "auto"})
    trainer, tok, rollout, _ = build_grpo(r)
    captured: list[dict] = []
    orig = trainer.compute_loss

    def spy(model, inputs, *a, **kw):
        captured.append({k: inputs[k] for k in ("completion_ids", "completion_mask", "tool_mask") if k in inputs})
        return orig(model, inputs, *a, **kw)

    trainer.compute_loss = spy
    before = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
    try:
        trainer.train()
    finally:
        rollout.close()
    traces = rollout.last_traces
    assert len(traces) == 2 and all(t.finish != "error" for t in traces)
    assert sum(t.tool_calls for t in traces) >= 1, [t.completion for t in traces]
    for t in traces:  # the trace's own mask: 0 exactly on the output steps' tokens
        zero_text = tok.decode([i for i, m in zip(t.token_ids, t.mask, strict=True) if m == 0])
        assert zero_text == "".join(s.text for s in t.steps if s.kind == "output")
        assert t.tokens == sum(t.mask)
    # what TRL trained on: tool_mask zeros are the output blocks, every one of them
    batch = captured[0]
    assert "tool_mask" in batch
    ids, cmask, tmask = batch["completion_ids"], batch["completion_mask"], batch["tool_mask"]
    zeros = 0
    for row in range(ids.shape[0]):
        sel = (cmask[row] == 1) & (tmask[row] == 0)
        text = tok.decode(ids[row][sel].tolist())
        zeros += int(sel.sum())
        if text:
            assert text.startswith("```output") or text.startswith("\n```output"), text
            assert "```python" not in text
    assert zeros == sum(len(t.mask) - sum(t.mask) for t in traces) > 0
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert logs and all(math.isfinite(h["loss"]) for h in logs)
    assert moved(before, dict(trainer.model.named_parameters())) > 0


async def test_dpo_tiny(tmp_path, tiny_dir):
    from tests.training.test_data import traces_file
    from training.dpo import run_dpo

    out = tmp_path / "dpo"
    r = load_recipe("cpu_dpo", {"model": str(tiny_dir), "data": str(traces_file(tmp_path)),
                                "output_dir": str(out), "max_steps": 2, "learning_rate": 1e-3})
    _, metrics = run_dpo(r)
    assert math.isfinite(metrics["train_loss"]) and metrics["rows"] >= 2
    assert moved(weights(tiny_dir), weights(out)) > 1e-5
    await generates(out)
