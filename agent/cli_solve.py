"""`tirmath solve`: solve one problem with voted CoT/TIR samples and show it live.

Parses flags into `SolveConfig`, opens the backend (in-process vLLM, transformers, or a
server) and a sandboxed kernel pool, runs `agent.solve.solve`, and prints the answer (or one
JSON object with `--json`); `--trace FILE` writes every sample's full trace as JSONL.
All input is checked before any model is loaded. The work is done by the library.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from agent.cli_args import ConfigParser, with_builtin_defaults
from agent.config import EngineConfig, RolloutConfig, SandboxSettings, SolveConfig, setting
from agent.errors import UserError
from agent.paths import atomic_write, read_text
from agent.types import Problem


@dataclass(frozen=True)
class SolveArgs:
    """The flags of `tirmath solve` that are not settings of the config tree."""

    problem: str | None = setting(None, "the problem text", positional=True)
    file: str | None = setting(None, "read the problem text from a UTF-8 text file", path="read")
    dataset: str | None = setting(None, "dataset short name or file (see tirmath datasets), with --id")
    id: str | None = setting(None, "problem id within --dataset")
    answer: str | None = setting(None, "reference answer, to grade the result")
    modulus: int | None = setting(None, "reduce integer answers mod this (AIMO2: 1000)", lo=2)
    json: bool = setting(False, "print one JSON object on stdout")
    trace: str | None = setting(None, "write every sample's full trace to this JSONL file", path="write")
    quiet: bool = setting(False, "no live view")
    verbose: bool = setting(False, "show the engine's own log lines")


SOLVE_GROUPS = (SolveArgs, EngineConfig, RolloutConfig, SolveConfig, SandboxSettings)


def _load_problem(a: SolveArgs) -> Problem:
    given = [x for x in (a.problem, a.file, a.dataset) if x is not None]
    if len(given) != 1:
        raise UserError("give exactly one of: PROBLEM text, --file FILE, or --dataset NAME --id ID")
    if a.dataset is not None:
        if not a.id:
            raise UserError("--dataset needs --id ID")
        from agent.datasets import find_problem

        prob = find_problem(a.dataset, a.id)
    elif a.file is not None:
        prob = Problem(id=Path(a.file).stem, text=read_text(a.file, "--file"), answer=a.answer)
    else:
        prob = Problem(id="problem", text=str(a.problem), answer=a.answer)
    if not prob.text.strip():
        raise UserError("the problem text is empty")
    if a.modulus is not None:
        prob = Problem(prob.id, prob.text, prob.answer, prob.source, a.modulus)
    return prob


def clean_stdout() -> TextIO:
    """Keep stdout for our JSON alone: point file descriptor 1 (which libraries and native
    code print to) at stderr, and return a file on the original stdout."""
    sys.stdout.flush()
    saved = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    return saved


def build_parser() -> ConfigParser:
    p = ConfigParser("tirmath solve", SOLVE_GROUPS, description="Solve one problem with voted CoT/TIR samples.")
    p.add_argument("--concurrency", dest="concurrency", type=int, help="alias of --sample-concurrency")
    return p


def parse(argv: list[str]) -> tuple[SolveArgs, EngineConfig, SolveConfig, SandboxSettings]:
    """Flags -> the command's own args and the config tree, all checked (UserError on a mistake)."""
    g = build_parser().parse(with_builtin_defaults(argv))
    return g[SolveArgs], g[EngineConfig], g[SolveConfig], g[SandboxSettings]


def main(argv: list[str]) -> int:
    args, engine, config, sandbox = parse(argv)
    problem = _load_problem(args)
    if len(engine.server) > 1:
        raise UserError("tirmath solve takes one --server; use tirmath eval for several")
    if not engine.server:
        from agent.models import resolve_model

        resolve_model(engine.model)  # a missing folder fails here, before any engine starts
    out = clean_stdout() if args.json else sys.stdout
    result = asyncio.run(_run(problem, engine, config, sandbox, args.quiet))
    if args.trace is not None:
        atomic_write(args.trace, "".join(json.dumps(t.to_dict(), ensure_ascii=False) + "\n" for t in result.traces))
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False), file=out, flush=True)
    else:
        graded = "" if result.correct is None else ("  (correct)" if result.correct else "  (wrong)")
        print(f"answer: {result.answer}{graded}   [{result.seconds:.1f}s, stop: {result.stop_reason}]")
    return _exit_code(result)


def _exit_code(result: Any) -> int:
    """1 when no sample gave an answer because samples failed (the first failure said on stderr)."""
    failed = [t for t in result.traces if t.finish == "error"]
    if result.answer is None and failed:
        print(f"tirmath solve: error: no answer: {len(failed)} of {len(result.traces)} samples failed; first: "
              f"{failed[0].error}", file=sys.stderr)
        return 1
    return 0


async def _run(problem: Problem, engine: EngineConfig, config: SolveConfig, sandbox: SandboxSettings,
               quiet: bool) -> Any:
    from agent.backends import open_backend
    from agent.solve import plan_modes, solve
    from agent.view import make_view
    from sandbox.pool import KernelPool

    pool = None
    n_tir = plan_modes(config.samples, config.tir_ratio).count("tir")
    if n_tir:
        pool = KernelPool(sandbox.kernels or min(n_tir, config.concurrency or n_tir),
                          sandbox.sandbox_config())
        await pool.start()
    backend = None
    try:
        backend = await open_backend(model=engine.model, server=engine.server[0] if engine.server else None,
                                     engine=engine.engine, prompt_family=config.rollout.prompt_family,
                                     **engine.engine_options())
        view = make_view(f"tirmath solve: {problem.id}", quiet=quiet)
        try:
            return await solve(problem, backend, pool, config, on_event=view)
        finally:
            if view is not None:
                view.close()
    finally:
        if backend is not None:
            await backend.close()
        if pool is not None:
            await pool.close()
