"""agent.models: the converted default model folder, resolving `--model`, atomic conversion."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.errors import UserError
from agent.models import resolve_model

REPO = Path(__file__).resolve().parents[2]


def test_default_folder_is_a_clean_float32_hf_model(default_model_dir: Path) -> None:
    config = json.loads((default_model_dir / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["dtype"] == "float32" and config["architectures"] == ["LlamaForCausalLM"]
    assert (default_model_dir / "model.safetensors").stat().st_size > 400e6

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(default_model_dir))
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False)
    assert text.endswith("<|im_start|>assistant\n") and "<|im_start|>user\nhi<|im_end|>" in text


def test_resolve_none_and_local_folder(default_model_dir: Path) -> None:
    assert resolve_model(None) == str(default_model_dir)
    assert resolve_model(str(default_model_dir)) == str(default_model_dir.resolve())


def test_resolve_passes_hub_ids_through() -> None:
    assert resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert resolve_model("gpt2") == "gpt2"


@pytest.mark.parametrize("name", ["./no-such-model", "/nonexistent/model", "a/b/c", "~/no-such-model-here"])
def test_resolve_missing_local_path_is_a_user_error(name: str) -> None:
    with pytest.raises(UserError, match="does not exist"):
        resolve_model(name)


def test_resolve_folder_without_config_and_a_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="has no config.json"):
        resolve_model(str(tmp_path))
    f = tmp_path / "weights.gguf"
    f.write_text("x")
    with pytest.raises(UserError, match="is a file"):
        resolve_model(str(f))


def _convert_cmd() -> list[str]:
    return [sys.executable, "-c", "from agent.models import default_model_dir; print(default_model_dir())"]


@pytest.mark.slow
def test_conversion_killed_midway_leaves_no_broken_cache(tmp_path: Path) -> None:
    env = dict(os.environ, TIRMATH_CACHE=str(tmp_path))
    target = tmp_path / "smollm2-135m-instruct"
    proc = subprocess.Popen(_convert_cmd(), cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    line = proc.stderr.readline()  # the one-line notice comes before any work
    assert "converting the default model" in line and str(target) in line
    for _ in range(1200):  # kill it while it writes into its temporary folder
        if any(tmp_path.glob(".smollm2-135m-instruct.*/config.json")) or proc.poll() is not None:
            break
        time.sleep(0.1)
    assert proc.poll() is None, "conversion finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not target.exists()

    done = subprocess.run(_convert_cmd(), cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(target) and (target / "config.json").is_file()
    again = subprocess.run(_convert_cmd(), cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert "converting" not in again.stderr  # reused, not converted twice
