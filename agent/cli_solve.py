"""`tirmath solve`: solve one problem with voted CoT/TIR samples and show it live.

Parses flags into `SolveConfig`, opens the backend (in-process vLLM, transformers, or a
server) and a sandboxed kernel pool, runs `agent.solve.solve`, and prints the answer (or one
JSON object with `--json`); `--trace FILE` writes every sample's full trace as JSONL.
All input is checked before any model is loaded. The work is done by the library.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from agent.errors import UserError
from agent.prompt_variants import parse_prompts
from agent.rollout import RolloutConfig
from agent.solve import SolveConfig
from agent.tip import parse_tip
from agent.types import Problem


def add_model_args(p: argparse.ArgumentParser) -> None:
    """Model and engine flags, shared by `solve`, `eval` and `gen-tir`."""
    g = p.add_argument_group("model")
    g.add_argument("--model", help="HF hub id or local folder (default: built-in SmolLM2-135M-Instruct); "
                   "with --server, the served model (for its tokenizer)")
    g.add_argument("--server", action="append", help="OpenAI-compatible server URL, e.g. "
                   "http://127.0.0.1:8000/v1 (eval: repeat to spread problems over several servers)")
    g.add_argument("--engine", choices=("vllm", "hf"), default="vllm", help="in-process engine (default vllm)")
    g.add_argument("--dtype", help="engine dtype (default: float32 for the built-in model, else auto)")
    g.add_argument("--max-model-len", type=int, default=None, help="context length for the engine")
    g.add_argument("--tensor-parallel-size", type=int, default=None, help="GPUs per engine (GPU only)")
    g.add_argument("--gpu-memory-utilization", type=float, default=None, help="GPU only")
    g.add_argument("--prompt-family", default="auto", help="auto | r1 | qwen | small | gpt-oss")


def add_sampling_args(p: argparse.ArgumentParser, samples: int, tir_ratio: bool = True) -> argparse._ArgumentGroup:
    """Sampling and per-sample budget flags, shared by `solve`, `eval` and `gen-tir`."""
    s = p.add_argument_group("sampling")
    s.add_argument("--samples", type=int, default=samples, help=f"samples per problem (default {samples})")
    if tir_ratio:
        s.add_argument("--tir-ratio", type=float, default=0.5, help="share of TIR samples, 0..1 (default 0.5)")
    s.add_argument("--max-tokens", type=int, default=8192, help="generated tokens per sample (default 8192)")
    s.add_argument("--temperature", type=float, default=0.6)
    s.add_argument("--top-p", type=float, default=0.95)
    s.add_argument("--seed", type=int, default=0, help="base seed; per-sample seeds are derived")
    s.add_argument("--max-tool-calls", type=int, default=8, help="code cells per sample (default 8)")
    s.add_argument("--cell-timeout", type=float, default=10.0, help="seconds per code cell (default 10)")
    s.add_argument("--policy", default="fixed", help="stop policy, e.g. fixed, consistency:4/5, agree:3")
    s.add_argument("--weight", default="uniform", help="vote weights: uniform, tir_clean, aimo2, fitted:PATH")
    s.add_argument("--tip", nargs="?", const="", default=None, metavar="alpha=A,beta=B",
                   help="thought-switching penalty (default alpha=3,beta=600 when given bare)")
    s.add_argument("--tip-words", default=None, help="switching words for --tip, comma-separated "
                   "(default: alternatively,instead)")
    s.add_argument("--tip-ratio", type=float, default=1.0, help="share of samples with --tip (default 1)")
    s.add_argument("--prompts", default=None, metavar="A,B", help="prompt variants to mix: names "
                   "(default, careful, verify) or text files")
    return s


def check_sampling_args(a: argparse.Namespace, tir_ratio: float) -> None:
    """Validate the shared flags (and --time-budget); a bad value raises UserError."""
    checks = [
        (a.samples >= 1, "--samples must be at least 1"),
        (0.0 <= tir_ratio <= 1.0, "--tir-ratio must be between 0 and 1"),
        (a.max_tokens >= 1, "--max-tokens must be positive"),
        (a.max_tool_calls >= 0, "--max-tool-calls must be 0 or more"),
        (a.cell_timeout > 0, "--cell-timeout must be positive"),
        (a.time_budget is None or a.time_budget > 0, "--time-budget must be positive"),
        (a.temperature >= 0, "--temperature must be 0 or more"),
        (0 < a.top_p <= 1, "--top-p must be in (0, 1]"),
        (0.0 <= a.tip_ratio <= 1.0, "--tip-ratio must be between 0 and 1"),
    ]
    for ok, msg in checks:
        if not ok:
            raise UserError(msg)
    from agent.policy import make_policy
    from agent.vote import make_weight

    make_policy(a.policy)  # raises UserError on a bad spec
    make_weight(a.weight)
    parse_tip(a.tip, a.tip_words)
    parse_prompts(a.prompts)


def config_from_args(a: argparse.Namespace) -> SolveConfig:
    """Build SolveConfig from parsed flags; bad values raise UserError."""
    check_sampling_args(a, a.tir_ratio)
    roll = RolloutConfig(
        max_tokens=a.max_tokens,
        max_tool_calls=a.max_tool_calls,
        cell_timeout=a.cell_timeout,
        temperature=a.temperature,
        top_p=a.top_p,
        prompt_family=a.prompt_family,
    )
    return SolveConfig(
        samples=a.samples,
        tir_ratio=a.tir_ratio,
        seed=a.seed,
        time_budget=a.time_budget,
        rollout=roll,
        policy=a.policy,
        weight=a.weight,
        concurrency=a.concurrency,
        tip=parse_tip(a.tip, a.tip_words),
        tip_ratio=a.tip_ratio,
        prompts=parse_prompts(a.prompts),
    )


def backend_options(a: argparse.Namespace) -> dict[str, Any]:
    """Engine options given on the command line (those not given are left to `open_backend`)."""
    opts: dict[str, Any] = {}
    for key in ("dtype", "max_model_len", "tensor_parallel_size", "gpu_memory_utilization"):
        if getattr(a, key) is not None:
            opts[key] = getattr(a, key)
    return opts


def _load_problem(a: argparse.Namespace) -> Problem:
    given = [x for x in (a.problem, a.file, a.dataset) if x is not None]
    if len(given) != 1:
        raise UserError("give exactly one of: PROBLEM text, --file FILE, or --dataset NAME --id ID")
    if a.dataset is not None:
        if not a.id:
            raise UserError("--dataset needs --id ID")
        from evals.datasets import find_problem

        prob = find_problem(a.dataset, a.id)
    elif a.file is not None:
        path = Path(a.file)
        if not path.is_file():
            raise UserError(f"--file {a.file}: no such file")
        prob = Problem(id=path.stem, text=path.read_text(encoding="utf-8"), answer=a.answer)
    else:
        prob = Problem(id="problem", text=a.problem, answer=a.answer)
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tirmath solve", description="Solve one problem with voted CoT/TIR samples.")
    p.add_argument("problem", nargs="?", help="the problem text")
    p.add_argument("--file", help="read the problem text from a file")
    p.add_argument("--dataset", help="dataset short name or file (see tirmath eval), with --id")
    p.add_argument("--id", help="problem id within --dataset")
    p.add_argument("--answer", help="reference answer, to grade the result")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--trace", help="write every sample's full trace to this JSONL file")
    p.add_argument("--quiet", action="store_true", help="no live view")
    add_model_args(p)
    s = add_sampling_args(p, samples=8)
    s.add_argument("--time-budget", type=float, default=None, help="wall seconds for the problem")
    s.add_argument("--concurrency", type=int, default=None, help="samples in flight (default: all)")
    s.add_argument("--modulus", type=int, default=None, help="reduce integer answers mod this (AIMO: 1000)")
    s.add_argument("--sandbox", choices=("auto", "strict", "none"), default="auto",
                   help="kernel isolation; 'none' runs model code unisolated (explicit opt-in)")
    return p


def main(argv: list[str]) -> int:
    a = build_parser().parse_args(argv)
    problem = _load_problem(a)
    config = config_from_args(a)
    if not a.server:
        from agent.models import resolve_model

        a.model = resolve_model(a.model)  # a missing folder fails here, before any engine starts
    trace_path = Path(a.trace) if a.trace else None
    if trace_path is not None and not trace_path.parent.exists():
        raise UserError(f"--trace {a.trace}: folder {trace_path.parent} does not exist")
    out = clean_stdout() if a.json else sys.stdout
    result = asyncio.run(_run(problem, config, a))
    if trace_path is not None:
        with trace_path.open("w", encoding="utf-8") as f:
            for t in result.traces:
                f.write(json.dumps(t.to_dict(), ensure_ascii=False) + "\n")
    if a.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False), file=out, flush=True)
    else:
        graded = "" if result.correct is None else ("  (correct)" if result.correct else "  (wrong)")
        print(f"answer: {result.answer}{graded}   [{result.seconds:.1f}s, stop: {result.stop_reason}]")
    return 0


async def _run(problem: Problem, config: SolveConfig, a: argparse.Namespace) -> Any:
    from agent.backends import open_backend
    from agent.solve import plan_modes, solve
    from agent.view import make_view
    from sandbox.pool import KernelPool, SandboxConfig

    servers = a.server or []
    if len(servers) > 1:
        raise UserError("tirmath solve takes one --server; use tirmath eval for several")
    pool = None
    n_tir = plan_modes(config.samples, config.tir_ratio).count("tir")
    if n_tir:
        pool = KernelPool(min(n_tir, config.concurrency or n_tir), SandboxConfig(isolation=a.sandbox))
        await pool.start()
    backend = None
    try:
        backend = await open_backend(model=a.model, server=servers[0] if servers else None, engine=a.engine, **backend_options(a))
        view = make_view(f"tirmath solve: {problem.id}", quiet=a.quiet)
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
