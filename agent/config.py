"""The one configuration tree: every setting of a solve, an eval, a gen-tir run, the Python API,
the Kaggle `predict` and the training rollouts, as frozen dataclasses with help and range metadata.

Groups (each a flat frozen dataclass; a new setting is one field in one of them):
  EngineConfig    which model and backend, and the engine options (vLLM engine arguments)
  RolloutConfig   one sample: sampling, token/tool/context limits, output caps, prompt family
  SolveConfig     one problem: samples, modes, seed, time budget, stop policy, vote weights
                  (embeds RolloutConfig as `rollout`)
  SandboxSettings the kernel pool: isolation level and warm kernels

`agent.cli_args` turns these classes into command-line flags and YAML config files with
transformers' `HfArgumentParser`; `validate(obj)` checks every field against its metadata
(ranges, finite numbers, choices, custom checks) and raises one `UserError` naming the flag.
Run stores embed `SolveConfig` (see `evals.runner.RunConfig`), training recipes embed
`RolloutConfig`.

Not covered: flags that belong to one command only (the problem text, output paths, dataset
fields): those are small dataclasses beside the command, validated by the same `validate`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from agent.errors import UserError

if TYPE_CHECKING:
    from sandbox.config import SandboxConfig

SPEC = "tirmath"  # metadata key holding a field's Spec (argparse never sees it)


@dataclass(frozen=True)
class Spec:
    """Validation and flag metadata of one field."""

    lo: float | None = None  # smallest allowed value
    hi: float | None = None  # largest allowed value
    lo_open: bool = False  # the value must be > lo rather than >= lo
    choices: Callable[[], Sequence[str]] | Sequence[str] | None = None  # allowed strings
    check: Callable[[Any], Any] | None = None  # raises UserError on a bad value
    flags: tuple[str, ...] = ()  # command-line spellings (default: --field-name)
    repeat: bool = False  # a repeatable flag collected into a tuple
    path: str | None = None  # "read" (an existing file), "write" (a file to create), "dir" (a folder to create)
    positional: bool = False  # a positional argument instead of a flag
    required: bool = False  # the flag (or positional argument) must be given


def setting(default: Any, help: str, **spec: Any) -> Any:
    """A dataclass field with help text and a `Spec`; ranges are added to the help text."""
    s = Spec(**spec)
    text = help
    if s.lo is not None or s.hi is not None:
        lo = "" if s.lo is None else (f"> {s.lo:g}" if s.lo_open else f">= {s.lo:g}")
        hi = "" if s.hi is None else f"<= {s.hi:g}"
        text += f" ({', '.join(x for x in (lo, hi) if x)})"
    if default is not None and not isinstance(default, tuple) and default is not dataclasses.MISSING:
        text += f" [default: {default}]"
    meta = {"help": text, SPEC: s}
    if isinstance(default, tuple):
        return field(default=default, metadata=meta)
    return field(default=default, metadata=meta)


def _prompt_families() -> Sequence[str]:
    from agent.prompts import FAMILIES

    return ("auto", *FAMILIES)


def _check_policy(spec: str) -> None:
    from agent.policy import make_policy

    make_policy(spec)


def _check_weight(spec: str) -> None:
    from agent.vote import make_weight

    make_weight(spec)


def _check_engine_arg(pair: str) -> None:
    key, sep, _ = pair.partition("=")
    if not sep or not key.strip().replace("-", "_").isidentifier():
        raise UserError(f"expected KEY=VALUE (a vLLM engine argument), got {pair!r}")


def _check_speculative(text: str) -> None:
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"not valid JSON ({e.msg} at column {e.colno}): {text!r}") from None
    if not isinstance(spec, dict) or not ({"method", "model"} & set(spec)):
        raise UserError('expected a JSON object with "method" (e.g. "ngram") or "model", '
                        'e.g. {"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_max": 4}')


def _check_url(url: str) -> None:
    from urllib.parse import urlparse

    u = urlparse(url)
    if u.scheme not in ("http", "https") or not u.netloc:
        raise UserError(f"{url!r} is not a server URL; expected e.g. http://127.0.0.1:8000/v1")


DTYPES = ("auto", "float32", "float", "bfloat16", "float16", "half")


@dataclass(frozen=True)
class EngineConfig:
    """Which model runs, where, and the engine options (the vLLM engine arguments AIMO teams use)."""

    model: str | None = setting(None, "HF hub id or local folder (default: the built-in SmolLM2-135M-Instruct); "
                                "with --server, the served model or a folder with its tokenizer")
    server: tuple[str, ...] = setting((), "OpenAI-compatible server URL, e.g. http://127.0.0.1:8000/v1 "
                                      "(repeat to spread the work over several servers)", repeat=True,
                                      check=_check_url)
    engine: Literal["vllm", "hf"] = setting("vllm", "in-process engine: vllm or hf (transformers, slow)")
    dtype: str | None = setting(None, "engine dtype (default: float32 for the built-in model, else auto)",
                                choices=DTYPES)
    max_model_len: int | None = setting(None, "context length in tokens (default: the model's own, as far as "
                                        "it fits in memory)", lo=1)
    quantization: str | None = setting(None, "quantized checkpoint method, e.g. awq, gptq, fp8 (vLLM names; "
                                       "GPU only)")
    kv_cache_dtype: str | None = setting(None, "KV cache dtype, e.g. fp8 (vLLM names; default auto)")
    speculative_config: str | None = setting(None, "speculative decoding as vLLM's JSON, e.g. "
                                             '\'{"method": "ngram", "num_speculative_tokens": 4}\'',
                                             check=_check_speculative)
    prefix_caching: bool = setting(True, "reuse the KV cache of shared prompt prefixes")
    engine_arg: tuple[str, ...] = setting((), "any other vLLM engine argument as KEY=VALUE (repeatable)",
                                          repeat=True, check=_check_engine_arg)
    tensor_parallel_size: int | None = setting(None, "GPUs per engine (GPU only)", lo=1)
    gpu_memory_utilization: float | None = setting(None, "share of GPU memory for the engine (GPU only)",
                                                   lo=0, hi=1, lo_open=True)
    kv_cache_gib: float | None = setting(None, "GiB of KV cache on a CPU box (default 2)", lo=0, lo_open=True)

    def engine_options(self) -> dict[str, Any]:
        """The engine options given (None: leave it to `open_backend`)."""
        opts = {
            "dtype": self.dtype, "max_model_len": self.max_model_len, "quantization": self.quantization,
            "kv_cache_dtype": self.kv_cache_dtype, "tensor_parallel_size": self.tensor_parallel_size,
            "gpu_memory_utilization": self.gpu_memory_utilization, "kv_cache_gib": self.kv_cache_gib,
        }
        if self.speculative_config:
            opts["speculative_config"] = json.loads(self.speculative_config)
        if not self.prefix_caching:
            opts["enable_prefix_caching"] = False
        for pair in self.engine_arg:
            key, _, value = pair.partition("=")
            opts[key.strip().replace("-", "_")] = _parse_value(value.strip())
        return {k: v for k, v in opts.items() if v is not None}


def _parse_value(text: str) -> Any:
    """An engine argument's value: JSON when it parses (numbers, true/false, objects), else the text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


@dataclass(frozen=True)
class RolloutConfig:
    """One sample: sampling settings and its limits."""

    max_tokens: int = setting(8192, "generated tokens per sample, across all tool rounds", lo=1)
    max_tool_calls: int = setting(8, "code cells run per sample; later blocks are not run", lo=0)
    cell_timeout: float = setting(10.0, "seconds per code cell", lo=0, lo_open=True)
    temperature: float = setting(0.6, "sampling temperature (0: greedy)", lo=0)
    top_p: float = setting(0.95, "nucleus sampling", lo=0, hi=1, lo_open=True)
    min_p: float = setting(0.0, "drop tokens below min_p x the top token's probability (0: off)", lo=0, hi=1)
    output_chars: int = setting(1200, "characters of a tool output fed back to the model (head and tail)", lo=1)
    record_tokens: bool = setting(False, "keep every sample's token ids and loss mask in its trace")
    prompt_family: str = setting("auto", "prompt family: auto (from the model name), or one of the families",
                                 choices=_prompt_families)
    reasoning_effort: str = setting("high", "gpt-oss (harmony) reasoning effort", choices=("low", "medium", "high"))
    logprobs: int = setting(0, "top-k logprobs per generated token, kept as the sample's mean entropy "
                            "(the `entropy` vote weight turns it on; 0: off)", lo=0, hi=20)


@dataclass(frozen=True)
class SolveConfig:
    """How one problem is attacked: its samples, their modes and seeds, the budget and the vote."""

    samples: int = setting(8, "samples per problem", lo=1)
    tir_ratio: float = setting(0.5, "share of TIR samples; the rest are plain CoT", lo=0, hi=1)
    seed: int = setting(0, "base seed; every sample's seed is derived from it, the problem id and its index")
    time_budget: float | None = setting(None, "wall seconds for the problem (eval --kaggle: for the whole run)",
                                        lo=0, lo_open=True)
    policy: str = setting("fixed", "stop policy: fixed, agree:K, consistency:K/N, posterior:P (alias sprt:P)",
                          check=_check_policy)
    weight: str = setting("uniform", "vote weights: uniform, tir_clean, aimo2, entropy, sentence (final-answer sentences count less), fitted:FILE", check=_check_weight)
    concurrency: int | None = setting(None, "samples in flight per problem (default: all)", lo=1,
                                      flags=("--sample-concurrency",))
    warm_prefix: bool = setting(True, "start one sample per mode first so the rest reuse its prefix cache")
    rollout: RolloutConfig = field(default_factory=RolloutConfig)


@dataclass(frozen=True)
class SandboxSettings:
    """The kernel pool of TIR samples (the sandbox's own limits live in sandbox.config.SandboxConfig)."""

    sandbox: Literal["auto", "strict", "none"] = setting(
        "auto", "kernel isolation: auto (the best the machine allows), strict, or none (unisolated: "
        "an explicit opt-in)")
    kernels: int | None = setting(None, "warm kernels in the pool (default: one per TIR sample in flight, "
                                  "at most 16)", lo=1)
    warm_kernels: int | None = setting(None, "spare kernels kept started and idle so a sample's kernel is "
                                       "handed out at once (default: as many as the pool's kernels)", lo=0)
    sandbox_reuse: bool = setting(False, "reset a finished sample's kernel in place and give it to the next "
                                  "sample instead of a fresh kernel: faster, but state a cell hides (patched "
                                  "libraries, threads, /tmp files) can reach later samples; trusted code only")

    def sandbox_config(self) -> SandboxConfig:
        """The pool's `sandbox.config.SandboxConfig` for these settings."""
        from sandbox.config import SandboxConfig

        return SandboxConfig(isolation=self.sandbox, reuse=self.sandbox_reuse, spares=self.warm_kernels)


CONFIG_GROUPS: tuple[type, ...] = (EngineConfig, RolloutConfig, SolveConfig, SandboxSettings)


def spec_of(f: dataclasses.Field) -> Spec:
    return f.metadata.get(SPEC) or Spec()


def flag_of(f: dataclasses.Field) -> str:
    """The command-line spelling of a field, for error messages."""
    s = spec_of(f)
    if s.positional:
        return f.name.upper()
    return s.flags[0] if s.flags else "--" + f.name.replace("_", "-")


def _check_number(f: dataclasses.Field, s: Spec, value: float) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, got {value}"
    if s.lo is not None and (value <= s.lo if s.lo_open else value < s.lo):
        return f"must be {'>' if s.lo_open else '>='} {s.lo:g}, got {value:g}"
    if s.hi is not None and value > s.hi:
        return f"must be <= {s.hi:g}, got {value:g}"
    return None


def _check_field(f: dataclasses.Field, value: Any) -> None:
    s = spec_of(f)
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if v is None or dataclasses.is_dataclass(v):
            continue
        msg = None
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            msg = _check_number(f, s, v)
        if msg is None and s.choices is not None:
            allowed = tuple(s.choices() if callable(s.choices) else s.choices)
            if v not in allowed:
                msg = f"invalid choice {v!r} (choose from {', '.join(map(str, allowed))})"
        if msg is None and s.check is not None:
            try:
                s.check(v)
            except UserError as e:
                msg = str(e)
        if msg is None and s.path is not None:
            from agent.paths import check_path

            msg = check_path(str(v), s.path)
        if msg is not None:
            raise UserError(f"{flag_of(f)}: {msg}")


def validate(obj: Any) -> Any:
    """Check every field of a config dataclass (and nested ones) against its Spec; return obj."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            validate(value)
        else:
            _check_field(f, value)
    return obj


def to_dict(obj: Any) -> dict[str, Any]:
    """A config as plain JSON-able data (nested groups as nested objects; tuples as lists)."""
    return json.loads(json.dumps(dataclasses.asdict(obj)))


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Rebuild a config dataclass from `to_dict` output; unknown keys are ignored, nested groups rebuilt."""
    kwargs: dict[str, Any] = {}
    hints = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in data.items():
        f = hints.get(key)
        if f is None:
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default  # type: ignore[misc]
        if dataclasses.is_dataclass(default) and isinstance(value, dict):
            value = from_dict(type(default), value)
        elif isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)
