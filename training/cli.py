"""`tirmath train sft|grpo|dpo --config RECIPE [--set key=value ...]` and `tirmath merge`.

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
