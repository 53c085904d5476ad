"""Shared fixtures for the training tests: the default model, a tiny random Qwen2, data paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def shared_data() -> Path:
    env = os.environ.get("TIRMATH_DATA_DIR")
    return Path(env) if env else (REPO / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return shared_data()


@pytest.fixture(scope="session")
def smol_dir() -> Path:
    """The built-in SmolLM2-135M-Instruct as an HF folder (converted once into the cache)."""
    from agent.models import default_model_dir

    return default_model_dir()


@pytest.fixture(scope="session")
def smol_tokenizer(smol_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(smol_dir))


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory, smol_dir: Path) -> Path:
    """A tiny random Qwen2 (2 layers, hidden 64) with the default model's tokenizer."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tok = AutoTokenizer.from_pretrained(str(smol_dir))
    cfg = Qwen2Config(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg)
    out = tmp_path_factory.mktemp("models") / "tiny-smol"
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out
