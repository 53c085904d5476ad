"""Training recipes: one flat, frozen, validated dataclass loaded from YAML plus `--set` overrides.

A recipe names the stage (`kind`: sft | grpo | dpo), the model, the data and every trainer knob
tirmath exposes; each field carries help text (`tirmath train sft --help-recipe` lists them).
Files live in `training/recipes/` (package data) or anywhere on disk. Validation is strict: an
unknown field or a value of the wrong type is a `UserError` naming the field and the file.

Not covered: the trainers themselves (sft.py, grpo.py, dpo.py) or TRL options that are not
fields here (pass them through the `trl_args` mapping, which is handed to the TRL config as is).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agent.config import RolloutConfig, validate
from agent.errors import UserError

RECIPES_DIR = Path(__file__).resolve().parent / "recipes"
# Training's rollout defaults (a short GRPO completion, full-temperature sampling); every field is
# the agent's own RolloutConfig field, so a new sampling setting appears here with no change.
TRAINING_ROLLOUT = RolloutConfig(max_tokens=512, temperature=1.0, top_p=1.0, max_tool_calls=4, output_chars=600)
# older flat recipe names -> RolloutConfig fields
LEGACY_ROLLOUT = {"max_completion_length": "max_tokens", "temperature": "temperature", "top_p": "top_p",
                  "min_p": "min_p", "max_tool_calls": "max_tool_calls", "cell_timeout": "cell_timeout",
                  "tool_output_chars": "output_chars", "prompt_family": "prompt_family"}
KINDS = ("sft", "grpo", "dpo")


def _f(default: Any, help: str) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Recipe:
    """Every knob of `tirmath train`. Fields not relevant to the chosen `kind` are ignored."""

    kind: str = _f("sft", "training stage: sft | grpo | dpo (must match the command)")
    model: str | None = _f(None, "HF model folder or hub id; null = the built-in default model")
    data: str = _f("", "training data: JSONL, run dir or save_to_disk folder (see training/data.py)")
    problems: str = _f("", "problem file for trace JSONL rows without an embedded problem (matched by id)")
    output_dir: str = _f("runs/train", "where the trained model (loadable by `tirmath solve`) is saved")
    system_prompt: str = _f("", "system prompt for training prompts and GRPO rollouts: fast-math-sft | fast-math-grpo "
                            "(the reference's, agent.prompts.SYSTEM_PROMPTS) or any text; '' = the family's template")
    rollout: RolloutConfig = field(
        default_factory=lambda: TRAINING_ROLLOUT,
        metadata={"help": "the agent's rollout settings (agent.config.RolloutConfig), embedded: generated tokens per "
                  "completion (max_tokens), temperature, top_p, min_p, tool calls, cell timeout, tool output chars, "
                  "prompt family; YAML `rollout: {...}` or `--set rollout.FIELD=VALUE` (the older flat names "
                  f"{', '.join(LEGACY_ROLLOUT)} still work)"})
    # optimisation
    learning_rate: float = _f(1e-5, "peak learning rate")
    num_train_epochs: float = _f(1.0, "epochs over the data (ignored when max_steps > 0)")
    max_steps: int = _f(-1, "optimizer steps; -1 = run num_train_epochs")
    per_device_train_batch_size: int = _f(1, "batch size per device")
    gradient_accumulation_steps: int = _f(1, "micro-batches per optimizer step")
    warmup_ratio: float = _f(0.0, "fraction of steps for linear warm-up")
    lr_scheduler_type: str = _f("cosine", "learning-rate schedule (transformers names)")
    weight_decay: float = _f(0.0, "AdamW weight decay")
    max_grad_norm: float = _f(1.0, "gradient clipping norm")
    bf16: bool = _f(False, "train in bfloat16 (GPU); false on CPU")
    use_cpu: bool = _f(False, "force training on the CPU")
    gradient_checkpointing: bool = _f(False, "trade compute for memory")
    seed: int = _f(0, "random seed for data order, init and sampling")
    logging_steps: int = _f(1, "log every N steps")
    save_steps: int = _f(0, "save a checkpoint every N steps; 0 = only the final model")
    optim: str = _f("", "optimizer (transformers `optim` names, e.g. paged_adamw_8bit); '' = transformers' default")
    deepspeed: str | None = _f(None, "DeepSpeed JSON config path (multi-GPU, launched via accelerate)")
    trl_args: dict = _f({}, "extra keyword arguments passed to the TRL config unchanged")
    # LoRA
    lora: bool = _f(False, "train a LoRA adapter (peft) instead of all parameters")
    lora_r: int = _f(16, "LoRA rank")
    lora_alpha: int = _f(32, "LoRA alpha")
    lora_dropout: float = _f(0.05, "LoRA dropout")
    lora_targets: list = _f(["q_proj", "k_proj", "v_proj", "o_proj"], "module names LoRA wraps")
    merge_lora: bool = _f(True, "merge the adapter into the base weights when saving")
    # data selection
    max_rows: int = _f(0, "keep at most this many training rows; 0 = all")
    min_pass_rate: float = _f(0.0, "difficulty filter: drop problems the run solved less often")
    max_pass_rate: float = _f(1.0, "difficulty filter: drop problems the run solved more often")
    max_length: int = _f(2048, "SFT/DPO: longest tokenised sequence kept (prompt + completion)")
    packing: bool = _f(False, "SFT: pack sequences into max_length blocks (TRL `packing`)")
    packing_strategy: str = _f("bfd", "SFT packing: bfd | bfd_split | wrapped (TRL names; wrapped = TRL 0.x packing)")
    # GRPO
    num_generations: int = _f(8, "GRPO: completions per prompt (the group)")
    beta: float = _f(0.0, "GRPO: KL coefficient against the reference model; DPO: preference beta")
    loss_type: str = _f("dapo", "GRPO loss normalisation (TRL names: grpo, dapo, dr_grpo, bnpo, ...)")
    rewards: list = _f(["accuracy", "format"], "GRPO reward names (see training/rewards.py)")
    reward_weights: list = _f([], "GRPO weight per reward; empty = all 1.0")
    format_think_end: str = _f("</think>", "format reward: the boxed answer must come before this tag; '' = anywhere")
    format_pattern: str = _f("", "format reward: a regex the whole completion must match (re.match, DOTALL); "
                             "'' = a non-empty box before format_think_end")
    length_unit: str = _f("tokens", "cosine and length rewards: length in tokens | chars (of the model's own text)")
    length_group: str = _f("prompt", "length reward: min/max over one prompt's completions (prompt) or over "
                           "every completion scored in one call (call)")
    cosine_max_len: int = _f(0, "cosine reward: far end, in length_unit; 0 = max_completion_length (tokens only)")
    cosine_correct: list = _f([1.0, 0.1], "cosine reward: correct answers, value at length 0 and at the far end")
    cosine_wrong: list = _f([-1.0, -0.1], "cosine reward: wrong answers, value at length 0 and at the far end "
                            "(-1 for a quick wrong guess, -0.1 for a long one)")
    repetition_ngram: int = _f(3, "repetition reward: n-gram size over words")
    repetition_penalty: float = _f(-1.0, "repetition reward: value when every n-gram repeats")
    # TIR-aware GRPO
    tir: bool = _f(False, "GRPO: roll out through the agent's TIR loop with sandboxed kernels")
    sandbox_isolation: str = _f("auto", "TIR: sandbox isolation (auto | strict | none)")
    kernels: int = _f(0, "TIR: warm sandbox kernels kept across steps; 0 = one per completion, at most 8")
    # GRPO rollout engine (training/rollout_engine.py)
    rollout_backend: str = _f("transformers", "GRPO rollouts: auto (vllm if it imports, else transformers; plain GRPO "
                              "with trl_args use_vllm: TRL's) | vllm (tirmath's in-process engine, trainer weights "
                              "pushed in each step) | server (a vLLM server, see rollout_server) | transformers "
                              "(TIR: the live model; plain GRPO: TRL's own generation)")
    vllm_gpu_memory_utilization: float = _f(0.3, "rollout_backend vllm on a GPU: share of the device memory for the engine")
    vllm_kv_cache_gib: float = _f(1.0, "rollout_backend vllm on the CPU: GiB of KV cache")
    vllm_max_model_len: int = _f(0, "rollout_backend vllm: context length of the engine; 0 = the model's own")
    rollout_server: str = _f("", "rollout_backend server: URL of a vLLM server started with VLLM_SERVER_DEV_MODE=1 and "
                             "--worker-extension-cls training.vllm_sync.WeightSyncExtension")
    rollout_sync_dir: str = _f("", "rollout_backend server: a folder both trainer and server see; weights go through it")
    # DPO
    dpo_max_similarity: float = _f(0.9, "DPO pairs: drop pairs whose texts are more similar than this")
    dpo_min_length_ratio: float = _f(1.2, "DPO pairs: a correct rejected trace must be this much longer")

    # The rollout settings under their older flat recipe names (read-only views of `rollout`).
    @property
    def max_completion_length(self) -> int:
        return self.rollout.max_tokens

    @property
    def temperature(self) -> float:
        return self.rollout.temperature

    @property
    def top_p(self) -> float:
        return self.rollout.top_p

    @property
    def min_p(self) -> float:
        return self.rollout.min_p

    @property
    def max_tool_calls(self) -> int:
        return self.rollout.max_tool_calls

    @property
    def cell_timeout(self) -> float:
        return self.rollout.cell_timeout

    @property
    def tool_output_chars(self) -> int:
        return self.rollout.output_chars

    @property
    def prompt_family(self) -> str:
        return self.rollout.prompt_family

    def effective_cosine_max_len(self) -> int:
        """The cosine reward's far end in `length_unit` (tokens default to max_completion_length)."""
        return self.cosine_max_len or self.max_completion_length


def field_help() -> list[tuple[str, str, str]]:
    """(name, type, help) for every recipe field, for `--help-recipe`."""
    hints = typing.get_type_hints(Recipe)
    rows = [(f.name, _type_name(hints[f.name]), f.metadata["help"]) for f in dataclasses.fields(Recipe)]
    r_hints = typing.get_type_hints(RolloutConfig)
    rows += [(f"rollout.{f.name}", _type_name(_base(r_hints[f.name])), f.metadata["help"])
             for f in dataclasses.fields(RolloutConfig)]
    return rows


def _base(tp: Any) -> Any:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1 else tp


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _check_value(name: str, tp: Any, value: Any, where: str) -> Any:
    """`value` coerced to the field type `tp`, or a UserError naming the field and file."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        tp = next(a for a in args if a is not type(None))
    ok: bool
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        if isinstance(value, str):  # YAML 1.1 reads `1e-5` (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif tp is str:
        ok = isinstance(value, str)
    elif tp is list:
        ok = isinstance(value, list)
    elif tp is dict:
        ok = isinstance(value, dict)
    else:  # pragma: no cover - every field type is listed above
        ok = True
    if not ok:
        raise UserError(f"{where}: field {name!r} must be {_type_name(tp)}, got {value!r}")
    return value


def resolve_recipe_path(spec: str) -> Path:
    """A recipe path on disk, or the name of a packaged recipe (`cpu_sft` or `cpu_sft.yaml`)."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    for cand in (RECIPES_DIR / spec, RECIPES_DIR / f"{spec}.yaml"):
        if cand.is_file():
            return cand
    known = ", ".join(sorted(p.stem for p in RECIPES_DIR.glob("*.yaml")))
    raise UserError(f"recipe {spec!r} not found (not a file, nor a packaged recipe: {known})")


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`key=value` strings to a dict; values parsed as YAML (`lr=1e-5`, `lora=true`, `rewards=[a,b]`)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {pair!r}: expected key=value")
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def _split_rollout(values: dict[str, Any], where: str) -> tuple[dict[str, Any], RolloutConfig]:
    """(the other fields, the embedded RolloutConfig) from `rollout: {...}`, `rollout.FIELD` keys and
    the older flat names; each value type- and range-checked like a command-line flag."""
    rest: dict[str, Any] = {}
    given: dict[str, Any] = {}
    for name, value in values.items():
        if name == "rollout":
            if not isinstance(value, dict):
                raise UserError(f"{where}: field 'rollout' must be a mapping of rollout settings")
            given.update(value)
        elif name.startswith("rollout."):
            given[name.split(".", 1)[1]] = value
        elif name in LEGACY_ROLLOUT:
            given[LEGACY_ROLLOUT[name]] = value
        else:
            rest[name] = value
    hints = typing.get_type_hints(RolloutConfig)
    for name, value in list(given.items()):
        if name not in hints:
            raise UserError(f"{where}: unknown rollout setting {name!r} (fields: {', '.join(hints)})")
        given[name] = _check_value(f"rollout.{name}", hints[name], value, where)
    try:
        return rest, validate(dataclasses.replace(TRAINING_ROLLOUT, **given))
    except UserError as e:
        flag, _, msg = str(e).partition(": ")
        raise UserError(f"{where}: field 'rollout.{flag.lstrip('-').replace('-', '_')}' {msg}") from None


def build_recipe(values: dict[str, Any], where: str) -> Recipe:
    """A validated Recipe from a mapping; `where` names the source in error messages."""
    hints = typing.get_type_hints(Recipe)
    values, rollout = _split_rollout(values, where)
    clean: dict[str, Any] = {"rollout": rollout}
    for name, value in values.items():
        if name not in hints:
            raise UserError(f"{where}: unknown field {name!r} (see `tirmath train sft --help-recipe`)")
        clean[name] = _check_value(name, hints[name], value, where)
    recipe = Recipe(**clean)
    if recipe.kind not in KINDS:
        raise UserError(f"{where}: field 'kind' must be one of {', '.join(KINDS)}, got {recipe.kind!r}")
    if recipe.reward_weights and len(recipe.reward_weights) != len(recipe.rewards):
        raise UserError(f"{where}: field 'reward_weights' needs one weight per reward ({len(recipe.rewards)})")
    for name in ("cosine_correct", "cosine_wrong"):
        if len(getattr(recipe, name)) != 2:
            raise UserError(f"{where}: field {name!r} must be two numbers [at length 0, at max length]")
    _check_reward_fields(recipe, where)
    return recipe


def _check_reward_fields(recipe: Recipe, where: str) -> None:
    import re

    choices = {"length_unit": ("tokens", "chars"), "length_group": ("prompt", "call"),
               "packing_strategy": ("bfd", "bfd_split", "wrapped")}
    for name, allowed in choices.items():
        if getattr(recipe, name) not in allowed:
            raise UserError(f"{where}: field {name!r} must be one of {', '.join(allowed)}, got {getattr(recipe, name)!r}")
    if recipe.length_unit == "chars" and recipe.cosine_max_len <= 0 and "cosine" in recipe.rewards:
        raise UserError(f"{where}: field 'cosine_max_len' must be > 0 (characters) when length_unit is chars")
    try:
        re.compile(recipe.format_pattern)
    except re.error as e:
        raise UserError(f"{where}: field 'format_pattern' is not a valid regex ({e})") from None


def load_recipe(spec: str, overrides: dict[str, Any] | None = None) -> Recipe:
    """Load a recipe file (path or packaged name) and apply `overrides` on top."""
    path = resolve_recipe_path(spec)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"{path}{line}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a recipe is a mapping of field: value")
    recipe = build_recipe(data, str(path))
    if overrides:
        merged = {**data, **overrides}
        recipe = build_recipe(merged, f"{path} (with --set)")
    return recipe
