"""Pick and open a generation backend: `await open_backend(model, server, engine, **opts)`.

- `server` given: `ServerBackend` on that OpenAI-compatible URL; `model` is the served model
  name (None: the first one the server lists), `tokenizer=` a folder or hub id to load the
  tokenizer from (default: the folder the server reports, else the model name).
- else `engine="vllm"`: the in-process `VLLMEngineBackend`; `engine="hf"`: transformers.
  `model` None means the built-in default model (loaded in float32 unless `dtype` is given,
  so continuations from token ids match one-shot generations).

All user mistakes (missing model folder, unreachable server, GPU-only options on a CPU box,
vLLM not installed) are one `UserError` each. Engines are imported only when opened.
Backend classes: see `base.Backend` for the interface.
"""

from __future__ import annotations

import importlib
from typing import Any

from agent.backends.base import Backend, Chunk, GenParams
from agent.errors import UserError

__all__ = ["Backend", "Chunk", "GenParams", "open_backend", "ENGINES"]

ENGINES = ("vllm", "hf")
GPU_ONLY = ("gpu_memory_utilization", "tensor_parallel_size", "pipeline_parallel_size")
HF_OPTIONS = ("dtype", "threads", "tokenizer")


def _check_gpu_options(opts: dict[str, Any]) -> None:
    from agent.backends.vllm_engine import cuda_available

    given = [k for k in GPU_ONLY if opts.get(k) is not None and not (k.endswith("_size") and opts[k] == 1)]
    if given and not cuda_available():
        raise UserError(f"option {given[0]}={opts[given[0]]!r} needs a CUDA GPU, and none is visible here")


def _import_vllm() -> None:
    from agent.backends.engine_log import captured_stderr

    try:
        with captured_stderr("tirmath-vllm-import-"):  # Triton notes and FutureWarnings at import
            importlib.import_module("vllm")
    except Exception as e:  # ImportError, or a broken torch/torchvision pairing (RuntimeError)
        raise UserError(
            f"engine 'vllm' is not usable here ({type(e).__name__}: {e}); "
            "install `tirmath[cpu]` (or `tirmath[gpu]`), or use --engine hf"
        ) from e


def _harmony_tokenizer(model: str | None, server: str | None, family: str) -> Any:
    """For the gpt-oss family (given, or guessed from the model name): the harmony tokenizer, so no
    Hugging Face tokenizer is loaded or downloaded. None for other families."""
    from agent.prompts import guess_family

    if (family if family != "auto" else guess_family(model or "")) != "gpt-oss":
        return None
    if model is None and server is None:
        raise UserError("the gpt-oss prompt family needs a gpt-oss model (--model), not the built-in SmolLM2")
    from agent.harmony import HarmonyTokenizer

    return HarmonyTokenizer()


async def open_backend(
    model: str | None = None, server: str | None = None, engine: str = "vllm", prompt_family: str = "auto",
    **opts: Any,
) -> Backend:
    """Open the backend the arguments ask for; see the module docstring.

    Options whose value is None count as not given. With `server`, only `tokenizer` is used;
    engine options (dtype, max_model_len, ...) belong to the server's own command line.
    The gpt-oss family gets `agent.harmony.HarmonyTokenizer` unless `tokenizer` is given.
    """
    opts = {k: v for k, v in opts.items() if v is not None}
    if "tokenizer" not in opts:
        harmony_tok = _harmony_tokenizer(model, server, prompt_family)
        if harmony_tok is not None:
            opts["tokenizer"] = harmony_tok
    if server is not None:
        from agent.backends.server import ServerBackend

        return await ServerBackend.open(server, model=model, tokenizer=opts.pop("tokenizer", None))
    if engine not in ENGINES:
        raise UserError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    from agent.models import resolve_model

    path = resolve_model(model)
    if model is None:
        opts.setdefault("dtype", "float32")
    _check_gpu_options(opts)
    if engine == "hf":
        unknown = sorted(set(opts) - set(HF_OPTIONS))
        if unknown:
            raise UserError(f"option {unknown[0]!r} is not supported by --engine hf")
        from agent.backends.hf import HFBackend

        return await HFBackend.create(path, **opts)
    _import_vllm()
    from agent.backends.vllm_engine import VLLMEngineBackend

    return await VLLMEngineBackend.create(path, **opts)
