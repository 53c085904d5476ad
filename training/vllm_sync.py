"""Push a trainer's current weights into a running vLLM engine or server (no restart).

`WeightSyncExtension` is a vLLM `worker_extension_cls`: vLLM mixes it into its worker class, so
its methods can be called by name with `collective_rpc` (no pickled callables, so no
`VLLM_ALLOW_INSECURE_SERIALIZATION`). Each method hands `(name, tensor)` pairs to
the worker's `reload_weights` (vLLM's in-place layerwise reload, which also redoes the CPU
build's weight repacking; vLLM stacks q/k/v and gate/up itself from Hugging Face names).

`trainer_weights(model)` yields the trainer's parameters under the names vLLM expects: a peft
LoRA adapter is merged for the read and unmerged after (TRL's `sync_weights` does the same),
`base_model.model.` / `.base_layer` prefixes are dropped and adapter tensors skipped.

Two pushers, one per rollout backend:
- `EngineWeightSync` for tirmath's in-process `AsyncLLM` (agent/backends/vllm_engine.py): the
  weights travel as safetensors bytes in chunks over `await engine.collective_rpc(...)`, then
  `await engine.reset_prefix_cache()` drops KV blocks computed with the old weights.
- `ServerWeightSync` for an OpenAI-compatible vLLM server started with
  `VLLM_SERVER_DEV_MODE=1` and `--worker-extension-cls training.vllm_sync.WeightSyncExtension`:
  the trainer writes one safetensors file into `sync_dir` (a folder both machines see), then
  POSTs `/collective_rpc` (method `tirmath_load_file`, the path as its only string argument)
  and `/reset_prefix_cache`.

Not covered: NCCL / CUDA-IPC transfer (vLLM's own weight-transfer engines, which TRL's
`vllm_serve` uses on GPUs; a 14B model goes through host memory here), sharded (ZeRO-3/FSDP)
trainer parameters (gathered by the caller), tensor-parallel engines (each rank loads the full
tensors it is sent; vLLM's loader shards them) and speculative draft models.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXTENSION = "training.vllm_sync.WeightSyncExtension"
CHUNK_BYTES = 64 << 20  # safetensors bytes per collective_rpc message (bounds the extra trainer-side memory)


class WeightSyncExtension:
    """Methods vLLM adds to its worker (`worker_extension_cls`); `self` is the worker.

    Tensors are staged first (`tirmath_stage_bytes`, one call per chunk) and loaded together by
    `tirmath_commit`, through the worker's `reload_weights` (vLLM's in-place layerwise reload):
    a plain `model.load_weights` fails on the CPU build, whose linear layers repack their
    weights after loading (the repacked parameters lose their `weight_loader`), and a
    partial reload would leave layers half-loaded.
    """

    def tirmath_stage_bytes(self, blob: bytes) -> int:
        """Keep a safetensors blob's tensors for the next commit; returns how many."""
        from safetensors.torch import load

        tensors = load(bytes(blob))
        staged = self.__dict__.setdefault("_tirmath_staged", {})
        staged.update(tensors)
        return len(tensors)

    def tirmath_commit(self) -> int:
        """Load every staged tensor into the model in place; returns how many."""
        staged = self.__dict__.pop("_tirmath_staged", {})
        return self._tirmath_reload(staged)

    def tirmath_load_file(self, path: str) -> int:
        """Load a safetensors file's tensors into the model in place; returns how many."""
        from safetensors.torch import load_file

        return self._tirmath_reload(load_file(path))

    def _tirmath_reload(self, tensors: dict[str, Any]) -> int:
        if not tensors:
            return 0
        model = self.model_runner.model  # type: ignore[attr-defined]
        tied = _tied_groups(model)
        self.reload_weights(weights_iterator=list(tensors.items()))  # type: ignore[attr-defined]
        _retie(model, tied)
        return len(tensors)


def _tied_groups(model: Any) -> list[list[str]]:
    """Names of parameters that are one tensor (e.g. lm_head tied to embed_tokens)."""
    groups: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(p), []).append(name)
    return [names for names in groups.values() if len(names) > 1]


def _retie(model: Any, groups: list[list[str]]) -> None:
    """Tied twins (e.g. lm_head) after a reload: point them at the loaded tensor again and
    redo their kernel preparation. vLLM's layerwise reload processes only the layer that got
    the weights; on the CPU build the twin keeps a packed copy of the old ones (`cpu_linear`)."""
    for first, *others in groups:
        source = model.get_parameter(first)
        for name in others:
            owner, _, attr = name.rpartition(".")
            module = model.get_submodule(owner)
            if getattr(module, attr) is not source:
                setattr(module, attr, source)
            method = getattr(module, "quant_method", None)
            if method is not None and hasattr(method, "process_weights_after_loading"):
                method.process_weights_after_loading(module)


def _vllm_name(name: str) -> str:
    name = name.removeprefix("base_model.model.").replace(".base_layer", "")
    for prefix in ("_checkpoint_wrapped_module.", "modules_to_save.default."):
        name = name.replace(prefix, "")
    return name


@contextmanager
def _merged(model: Any) -> Iterator[Any]:
    """The model with its LoRA adapter merged (if any) for the duration of the block."""
    peft = hasattr(model, "peft_config") and hasattr(model, "merge_adapter")
    if peft:
        model.merge_adapter()
    try:
        yield model
    finally:
        if peft:
            model.unmerge_adapter()


def trainer_weights(model: Any) -> Iterator[tuple[str, Any]]:
    """(vLLM name, tensor) for every parameter of the trainer's model, LoRA merged."""
    peft = hasattr(model, "peft_config")
    with _merged(model):
        prefix = getattr(model, "prefix", None) if peft else None
        for name, param in model.named_parameters():
            if (prefix and prefix in name) or "original_module" in name:
                continue
            # merged values are read now: copy them before the adapter is unmerged
            yield _vllm_name(name), param.detach().clone() if peft else param.detach()


def _chunks(weights: Iterator[tuple[str, Any]], limit: int) -> Iterator[bytes]:
    """safetensors blobs of at most ~`limit` bytes (a larger single tensor goes alone)."""
    from safetensors.torch import save

    group: dict[str, Any] = {}
    size = 0
    for name, t in weights:
        t = t.contiguous().cpu()
        if group and size + t.numel() * t.element_size() > limit:
            yield save(group)
            group, size = {}, 0
        group[name] = t
        size += t.numel() * t.element_size()
    if group:
        yield save(group)


@dataclass
class SyncStats:
    """Pushes done, seconds spent, tensors sent (read by training.bench)."""

    pushes: int = 0
    seconds: float = 0.0
    tensors: int = 0


class EngineWeightSync:
    """Pushes weights into an in-process AsyncLLM started with `worker_extension_cls=EXTENSION`."""

    def __init__(self, engine: Any, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.engine = engine
        self.chunk_bytes = chunk_bytes
        self.stats = SyncStats()

    async def push(self, model: Any) -> int:
        """Load `model`'s current weights into the engine and reset its prefix cache."""
        start = time.perf_counter()
        sent = 0
        for blob in _chunks(trainer_weights(model), self.chunk_bytes):
            await self.engine.collective_rpc("tirmath_stage_bytes", args=(blob,))
        counts = await self.engine.collective_rpc("tirmath_commit")
        sent = int(counts[0])
        await self.engine.reset_prefix_cache()
        self.stats.pushes += 1
        self.stats.tensors += sent
        self.stats.seconds += time.perf_counter() - start
        return sent


class ServerWeightSync:
    """Pushes weights into a vLLM OpenAI server through a shared folder and its dev endpoints."""

    def __init__(self, url: str, sync_dir: str | Path, timeout: float = 600.0) -> None:
        self.url = url.rstrip("/").removesuffix("/v1")
        self.sync_dir = Path(sync_dir)
        self.timeout = timeout
        self.stats = SyncStats()

    def _post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        import json
        import urllib.request

        data = json.dumps(body or {}).encode()
        req = urllib.request.Request(f"{self.url}{path}", data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=self.timeout) as r:
            raw = r.read()
        return json.loads(raw) if raw else None

    def push_sync(self, model: Any) -> int:
        """Write the weights to `sync_dir`, have the server load them, reset its prefix cache."""
        from safetensors.torch import save_file

        start = time.perf_counter()
        self.sync_dir.mkdir(parents=True, exist_ok=True)
        path = self.sync_dir / "tirmath-weights.safetensors"
        tmp = path.with_suffix(".tmp")
        save_file({n: t.contiguous().cpu() for n, t in trainer_weights(model)}, str(tmp))
        tmp.replace(path)
        try:
            out = self._post("/collective_rpc", {"method": "tirmath_load_file", "args": [str(path)]})
            self._post("/reset_prefix_cache")
        finally:
            path.unlink(missing_ok=True)
        sent = int(out["results"][0])
        self.stats.pushes += 1
        self.stats.tensors += sent
        self.stats.seconds += time.perf_counter() - start
        return sent

    async def push(self, model: Any) -> int:
        import asyncio

        return await asyncio.to_thread(self.push_sync, model)
