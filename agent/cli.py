"""`tirmath` command line: the composition root.

Dispatches each subcommand to a `main(argv) -> int` in the package that owns it, importing
that package only when the subcommand runs (so `tirmath sandbox` never loads vLLM, and
`agent` never imports `evals` or `training` at module level). A `UserError` anywhere becomes
one line on stderr and exit code 2; a `RunStopped` (engine dead, servers down, disk full) one
line and exit code 1. This module does no work of its own.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import warnings

from agent.errors import RunStopped, UserError

# subcommand -> ("module:function", one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "solve": ("agent.cli_solve:main", "solve one problem with voted CoT/TIR samples"),
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
}


def _usage() -> str:
    lines = ["usage: tirmath COMMAND [options]", "", "commands:"]
    for name, (_, help_text) in COMMANDS.items():
        lines.append(f"  {name:<10} {help_text}")
    lines.append("")
    lines.append("Run `tirmath COMMAND --help` for a command's options.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    if args[0] in ("-V", "--version"):
        from agent import __version__

        print(f"tirmath {__version__}")
        return 0
    name, rest = args[0], args[1:]
    # Engine libraries log at INFO by default; a user of the CLI wants our output. Override by env.
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore", category=FutureWarning)
    # asyncio warns "Unknown child process pid" when the sandbox reaps a killed kernel itself
    logging.getLogger("asyncio").setLevel(logging.ERROR)
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
    except RunStopped as e:  # engine dead, every server down, disk full: rerun to resume
        print(f"tirmath {name}: stopped: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"tirmath {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
