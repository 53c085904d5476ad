"""`python -m training.bench`: where a GRPO step's time goes, on the small model here.

Runs a few real GRPO steps (TIR-aware by default, `--plain` for TRL's own generation) and
prints, per step on average, the seconds spent generating, running tools (the rest of the
rollout phase: kernels, loop overhead), scoring (reward functions) and updating (everything
else in the step: log-probs, loss, backward, optimizer), as shares of the step. The baseline
is the step itself, measured in the same process. Nothing is asserted.

`--rollouts` instead compares rollout tokens/s of two runs: TIR rollouts on the transformers
backend (the baseline) and on tirmath's in-process vLLM engine, or with `--plain` TRL's own
generation (the baseline) and plain CoT rollouts on the vLLM engine; plus the weight push time.

Not covered: multi-GPU timings.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

EASY = [("e1", "What is 2+3?", "5"), ("e2", "What is 4*6?", "24"), ("e3", "What is 17*23?", "391"),
        ("e4", "What is 10-7?", "3")]


def _callback() -> Any:
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        def __init__(self) -> None:
            self.steps: list[float] = []
            self._t = 0.0

        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self._t = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.steps.append(time.perf_counter() - self._t)

    return StepClock()


def _time_generate(trainer: Any) -> dict[str, float]:
    """Wrap TRL's own generation (plain GRPO) to add up its seconds and completion tokens."""
    acc = {"seconds": 0.0, "tokens": 0.0, "samples": 0.0}
    orig = trainer._generate

    def timed(*a: Any, **kw: Any) -> Any:
        start = time.perf_counter()
        try:
            out = orig(*a, **kw)
        finally:
            acc["seconds"] += time.perf_counter() - start
        completion_ids = out[1]  # TRL 1.x: (prompt_ids, completion_ids, tool_mask, completions, ...)
        acc["tokens"] += sum(len(ids) for ids in completion_ids)
        acc["samples"] += len(completion_ids)
        return out

    trainer._generate = timed
    return acc


def _recipe(args: argparse.Namespace, tmp: Path, plain: bool, **extra: Any) -> Any:
    from training.recipe import load_recipe

    tmp.mkdir(parents=True, exist_ok=True)
    data = tmp / "easy.jsonl"
    data.write_text("".join(json.dumps({"id": i, "problem": q, "answer": a}) + "\n" for i, q, a in EASY))
    return load_recipe("cpu_grpo" if plain else "cpu_grpo_tir", {
        "model": args.model, "data": str(data), "output_dir": str(tmp / "out"), "max_steps": args.steps,
        "num_generations": args.generations, "per_device_train_batch_size": args.generations,
        "max_completion_length": args.tokens, "temperature": 0.7, "max_rows": len(EASY), **extra})


def _rollout_run(args: argparse.Namespace, tmp: Path, backend: str) -> dict[str, float]:
    """One GRPO run with rollouts on `backend`: rollout tokens/s and weight-push seconds."""
    from training.grpo import build_grpo

    recipe = _recipe(args, tmp, args.plain, rollout_backend=backend, vllm_max_model_len=2048,
                     vllm_kv_cache_gib=1.0)
    trainer, _, rollout, _ = build_grpo(recipe)
    if rollout is None:  # plain GRPO on transformers: TRL's own generation
        gen = _time_generate(trainer)
        try:
            trainer.train()
        finally:
            del trainer  # free the run's model and optimizer before the next one starts
            gc.collect()
        return {"tokens": gen["tokens"], "seconds": gen["seconds"], "tok_s": gen["tokens"] / gen["seconds"],
                "syncs": 0, "sync_s": 0.0, "samples": gen["samples"]}
    t = rollout.times
    syncs, sync_s = 0, 0.0
    try:
        trainer.train()
        syncs, sync_s = t.syncs, t.sync
        if backend == "vllm" and syncs == 0:  # one step only: time one push of the final weights
            start = time.perf_counter()
            rollout.push_weights(trainer.accelerator.unwrap_model(trainer.model), trainer.state.global_step)
            syncs, sync_s = 1, time.perf_counter() - start
    finally:
        rollout.close()
        del trainer, rollout  # free the first run's model and optimizer before the next one starts
        gc.collect()
    rollout_secs = t.wall - t.sync
    return {"tokens": t.model_tokens, "seconds": rollout_secs, "tok_s": t.model_tokens / rollout_secs,
            "syncs": syncs, "sync_s": sync_s / syncs if syncs else 0.0, "samples": t.samples}


def compare_rollouts(args: argparse.Namespace) -> int:
    """Rollout tokens/s on the baseline (transformers; plain: TRL's generation) and on the vLLM engine."""
    tmp = Path(tempfile.mkdtemp(prefix="tirmath-bench-"))
    runs = {b: _rollout_run(args, tmp / b, b) for b in ("transformers", "vllm")}
    base = runs["transformers"]["tok_s"]
    mode, baseline = ("plain (CoT)", "TRL generate") if args.plain else ("TIR", "transformers")
    print(f"GRPO {mode} rollouts on {args.model or 'the default model'}: {args.steps} steps x "
          f"{args.generations} completions x <= {args.tokens} tokens (baseline = {baseline})")
    for name, r in runs.items():
        label = baseline if name == "transformers" else name
        print(f"  {label:<12} {int(r['tokens']):6d} tokens in {r['seconds']:7.2f} s = {r['tok_s']:7.1f} tok/s"
              f"   {r['tok_s'] / base if base else 0:6.2f}x")
    v = runs["vllm"]
    print(f"  weight push into the vLLM engine: {v['sync_s']:.2f} s per step ({int(v['syncs'])} pushes)")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.bench", description=__doc__.split("\n")[0])
    ap.add_argument("--plain", action="store_true", help="plain GRPO instead of TIR (without --rollouts: TRL's "
                    "generation)")
    ap.add_argument("--rollouts", action="store_true", help="compare rollout engines: vLLM vs transformers "
                    "(with --plain: vs TRL's generation)")
    ap.add_argument("--steps", type=int, default=None, help="optimizer steps (default 2)")
    ap.add_argument("--model", default=None, help="model folder (default: the built-in model)")
    ap.add_argument("--generations", type=int, default=None, help="completions per step (default 4; 8 with --rollouts)")
    ap.add_argument("--tokens", type=int, default=64, help="max generated tokens per completion")
    args = ap.parse_args(argv)
    args.steps = args.steps or 2
    args.generations = args.generations or (8 if args.rollouts else 4)
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    if args.rollouts:
        return compare_rollouts(args)
    from training.grpo import build_grpo

    tmp = Path(tempfile.mkdtemp(prefix="tirmath-bench-"))
    recipe = _recipe(args, tmp, args.plain)
    clock = _callback()
    trainer, _, rollout, scoring = build_grpo(recipe, callbacks=[clock])
    plain_gen = _time_generate(trainer) if rollout is None else None
    try:
        trainer.train()
    finally:
        if rollout is not None:
            rollout.close()
    n = max(len(clock.steps), 1)
    step = sum(clock.steps) / n
    if rollout is not None:
        gen, rollout_wall = rollout.times.generate / n, rollout.times.wall / n
        tools = rollout_wall - gen
        calls = rollout.times.tool_calls / n
        batches = rollout.backend.stats.batch_sizes if rollout.backend else []
    else:
        gen, tools, calls, batches = (plain_gen or {"seconds": 0.0})["seconds"] / n, 0.0, 0.0, []
    score = scoring.seconds / n
    update = step - gen - tools - score
    mode = "plain" if args.plain else "TIR"
    print(f"GRPO {mode} step on {recipe.model or 'the default model'}: {args.generations} completions x "
          f"<= {args.tokens} tokens, {n} steps, {step:.2f} s a step (baseline = 1.00)")
    for name, sec in (("generate", gen), ("tools+loop", tools), ("score", score), ("update", update)):
        print(f"  {name:<11} {sec:8.2f} s   {sec / step if step else 0:6.2f} of the step")
    if rollout is not None:
        print(f"  tool calls per step: {calls:.1f}; generate batch sizes: {batches}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
