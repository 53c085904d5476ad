"""`tirmath` command line: the composition root.

Dispatches each subcommand to a `main(argv) -> int` in the package that owns it, importing that
package only when the subcommand runs (so `tirmath sandbox` never loads vLLM). A `UserError`
anywhere becomes one line on stderr and exit code 2. Library noise (engine log lines, warnings)
is turned down here, before any engine library is imported. This module does no work of its own.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import warnings

from agent.backends.base import BackendError
from agent.errors import RunStopped, UserError

# subcommand -> ("module:function", one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "solve": ("agent.cli_solve:main", "solve one problem with voted CoT/TIR samples"),
    "prompt": ("agent.cli_prompt:main", "print the exact first-turn prompt text (or --ids) for a family"),
    "datasets": ("agent.cli_datasets:main", "list the shipped datasets and recorded runs"),
    "doctor": ("agent.doctor:main", "show engines, GPU, sandbox isolation and model cache state"),
    "sandbox": ("sandbox.cli:main", "run code cells in one sandboxed kernel session"),
    "eval": ("evals.cli:eval_main", "evaluate on a dataset into a resumable run store"),
    "report": ("evals.cli:report_main", "markdown, plots and an HTML viewer for a run"),
    "compare": ("evals.cli:compare_main", "compare two runs side by side"),
    "gen-tir": ("evals.cli:gen_tir_main", "generate a filtered TIR training dataset"),
    "merge-runs": ("evals.cli:merge_runs_main", "merge the run stores of --shard K/N runs into one"),
    "replay": ("evals.replay:main", "replay recorded samples under stopping/budget policies"),
    "train": ("training.cli:train_main", "train with a recipe: sft | grpo | dpo"),
    "merge": ("training.cli:merge_main", "linear merge of two checkpoints"),
    "kaggle-local": ("evals.kaggle_cli:main", "rehearse a Kaggle AIMO submission with a local gateway"),
    "bundle": ("evals.bundle:main", "download an offline install bundle (wheels, model) for Kaggle"),
}


def _usage() -> str:
    lines = ["usage: tirmath COMMAND [options]", "", "commands:"]
    for name, (_, help_text) in COMMANDS.items():
        lines.append(f"  {name:<13} {help_text}")
    lines.append("")
    lines.append("Run `tirmath COMMAND --help` for a command's options.")
    return "\n".join(lines)


def quiet_libraries(verbose: bool = False) -> None:
    """Engine libraries log at INFO by default; a user of the CLI wants our output. Env wins."""
    level = "INFO" if verbose else "ERROR"
    if verbose:
        os.environ["TIRMATH_VERBOSE"] = "1"  # engines keep their own output on the terminal
    os.environ.setdefault("VLLM_LOGGING_LEVEL", level)
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "info" if verbose else "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TQDM_DISABLE", "0" if verbose else "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "0" if verbose else "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not verbose:
        warnings.filterwarnings("ignore")
    ours = logging.getLogger("tirmath")
    if not ours.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("tirmath: %(message)s"))
        ours.addHandler(handler)
        ours.setLevel(logging.INFO)
    for name in ("asyncio", "vllm", "transformers", "torch", "accelerate", "datasets", "httpx"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print(_usage(), file=sys.stderr)
        return 2
    if args[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if args[0] in ("-V", "--version"):
        from agent import __version__

        print(f"tirmath {__version__}")
        return 0
    name, rest = args[0], args[1:]
    quiet_libraries(verbose="--verbose" in rest)
    if name not in COMMANDS:
        print(f"tirmath: error: unknown command {name!r}; choose from {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    target, _ = COMMANDS[name]
    module_name, func_name = target.split(":")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
        return int(func(rest) or 0)
    except UserError as e:
        print(f"tirmath {name}: error: {e}", file=sys.stderr)
        return 2
    except (BackendError, RunStopped) as e:  # a server or engine failed, the disk is full: one line too
        print(f"tirmath {name}: error: {e} (finished work is kept; run the same command again to resume)",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"tirmath {name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `tirmath ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
