"""`tirmath train sft|grpo|dpo --config RECIPE [--set key=value ...]`, `tirmath train difficulty`
and `tirmath merge`.

Thin: parse arguments, load the recipe (training/recipe.py), call the stage's library function,
print where the model went. Every user mistake is a `UserError` (one line, exit 2).
"""

from __future__ import annotations

import math
import os
import sys

from agent.errors import UserError
from sandbox.errors import ArgumentParser


def _train_parser() -> ArgumentParser:
    ap = ArgumentParser(prog="tirmath train", description="Train with a recipe (YAML) over TRL.")
    ap.add_argument("stage", choices=["sft", "grpo", "dpo"], help="training stage")
    ap.add_argument("--config", help="recipe file or packaged recipe name (e.g. fast_math_grpo, cpu_sft)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a recipe field (value parsed as YAML); repeatable")
    ap.add_argument("--merge-lora", action="store_true", help="merge a LoRA adapter into the saved weights")
    ap.add_argument("--help-recipe", action="store_true", help="list every recipe field and exit")
    return ap


def train_main(argv: list[str]) -> int:
    if argv[:1] == ["difficulty"]:
        return difficulty_main(argv[1:])
    args = _train_parser().parse_args(argv)
    from training.recipe import field_help, load_recipe, parse_overrides

    if args.help_recipe:
        for name, tp, text in field_help():
            print(f"{name:<28} {tp:<12} {text}")
        return 0
    if not args.config:
        raise UserError("--config RECIPE is required (e.g. --config cpu_sft)")
    overrides = parse_overrides(args.set)
    if args.merge_lora:
        overrides["merge_lora"] = True
    recipe = load_recipe(args.config, overrides)
    if recipe.kind != args.stage:
        raise UserError(f"recipe {args.config!r} is a {recipe.kind} recipe, not {args.stage}")
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    if args.stage == "sft":
        from training.sft import run_sft as run
    elif args.stage == "grpo":
        from training.grpo import run_grpo as run
    else:
        from training.dpo import run_dpo as run
    out, metrics = run(recipe)
    shown = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items())
    print(f"tirmath train {args.stage}: saved {out} ({shown}); load it with `tirmath solve --model {out}`")
    return 0


def merge_main(argv: list[str]) -> int:
    ap = ArgumentParser(prog="tirmath merge", description="Linear merge of two checkpoints.")
    ap.add_argument("a", help="first model folder")
    ap.add_argument("b", help="second model folder")
    ap.add_argument("--weights", nargs=2, type=float, default=[0.5, 0.5], metavar=("WA", "WB"),
                    help="weights of A and B (default 0.5 0.5; the AIMO-2 winners used 0.3 0.7)")
    ap.add_argument("--out", required=True, help="output model folder")
    args = ap.parse_args(argv)
    if not all(math.isfinite(w) for w in args.weights) or sum(args.weights) == 0:
        raise UserError(f"--weights must be finite numbers that do not sum to 0, got {args.weights[0]:g} {args.weights[1]:g}")
    from training.merge import merge_checkpoints

    out = merge_checkpoints(args.a, args.b, tuple(args.weights), args.out)
    print(f"tirmath merge: wrote {out}", file=sys.stdout)
    return 0


def difficulty_main(argv: list[str]) -> int:
    """`tirmath train difficulty --data SOURCE --out DIR`: see training/difficulty.py."""
    ap = ArgumentParser(prog="tirmath train difficulty", description="Train a problem-text -> tokens "
                                 "regressor for the time scheduler (bank:predictor=DIR).")
    ap.add_argument("--data", required=True, help="run store folder or recorded-samples JSONL (as tirmath replay)")
    ap.add_argument("--problems", action="append", default=[], metavar="DATASET",
                    help="datasets holding the problem texts (needed for recorded files; repeatable)")
    ap.add_argument("--out", required=True, help="predictor folder to write")
    ap.add_argument("--kind", choices=("tfidf", "hf"), default="tfidf", help="tfidf (default, no download) or hf")
    ap.add_argument("--model", help="--kind hf: encoder hub id or folder (e.g. answerdotai/ModernBERT-base)")
    ap.add_argument("--label", choices=("mean", "correct"), default="mean",
                    help="mean tokens of all samples (default) or of the correct ones")
    ap.add_argument("--holdout", type=float, default=0.5, help="share of problems held out (default 0.5)")
    ap.add_argument("--epochs", type=float, default=3.0)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--max-length", type=int, default=256, help="problem text cut to this many tokens (hf)")
    ap.add_argument("--batch-size", type=int, default=8)
    a = ap.parse_args(argv)
    if not 0.0 < a.holdout < 1.0:
        raise UserError("--holdout must be between 0 and 1")
    from pathlib import Path

    from evals.replay import source_texts
    from evals.replay_sources import read_source
    from training.difficulty import TrainSettings, train_difficulty

    source = read_source(a.data)
    texts = source_texts(a.data, a.problems)
    settings = TrainSettings(a.kind, a.label, a.holdout, a.model, a.epochs, a.lr, a.max_length, a.batch_size)
    report = train_difficulty(source, texts, Path(a.out), settings)
    print(f"{report.describe()}; saved {a.out} (use it with --scheduler bank:predictor={a.out})")
    return 0
