"""`python -m agent.bench`: engine throughput under the agent vs plain generation, and abort time.

On the built-in default model in the in-process vLLM engine (sandbox isolation on), in one
process:
  1. the agent: `solve` with N concurrent TIR samples (the few-shot prompt makes the small
     model write code, which runs in real kernels and is fed back);
  2. plain generation: the same N prompts, each asked for as many tokens as its agent sample
     generated, with no stop strings and no tools;
and prints generated tokens/s for both and their ratio (target >= 0.9 here), over a few repeated
pairs after a full-size warm-up. `--compare-reuse` runs every rep also on a pool that reuses
kernels in place (same seeds) and prints fresh/reuse: the cost of a fresh kernel per sample. The same comparison for CoT-only samples shows the loop's own
cost apart from the tool rounds (extra requests, kernel CPU). Then it measures
how long a settled problem takes to stop: a policy stops the problem when the first sample
finishes, and the time from that decision to `solve` returning (all other requests aborted) is
printed. Figures only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from dataclasses import replace

from agent.backends.base import GenParams
from agent.config import RolloutConfig, SolveConfig
from agent.prompts import prompt_ids
from agent.solve import sample_seed, solve
from agent.types import Problem, Trace

PROBLEM = Problem(id="bench", text="What is the sum of the cubes of the integers from 1 to 20?", answer="44100")


class StopAtFirst:
    """Stop as soon as one sample finished; remembers when it decided."""

    name = "stop-at-first"

    def __init__(self) -> None:
        self.decided_at: float | None = None

    def decide(self, finished: Sequence[Trace], total: int, elapsed: float, budget: float | None) -> str | None:
        if finished and self.decided_at is None:
            self.decided_at = time.monotonic()
            return "first sample finished"
        return None


async def _plain(backend, traces: Sequence[Trace], temperature: float) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    """Generate, per agent sample, as many tokens as it generated; return (tokens, seconds)."""

    async def one(t: Trace) -> int:
        ids = prompt_ids(backend.tokenizer, PROBLEM, t.mode)
        params = GenParams(max_tokens=max(1, t.tokens), temperature=temperature, seed=t.seed, ignore_eos=True)
        n = 0
        async for ch in backend.stream(ids, params, f"plain-{t.index}"):
            n += len(ch.token_ids)
        return n

    t0 = time.monotonic()
    counts = await asyncio.gather(*(one(t) for t in traces))
    return sum(counts), time.monotonic() - t0


async def run(samples: int, max_tokens: int, dtype: str, warm: bool = True, reps: int = 3,
              compare_reuse: bool = False) -> None:
    from agent.backends.vllm_engine import VLLMEngineBackend
    from agent.models import default_model_dir
    from sandbox.pool import KernelPool, SandboxConfig

    backend = await VLLMEngineBackend.create(str(default_model_dir()), dtype=dtype, max_model_len=4096)
    pools = {"fresh": KernelPool(samples, SandboxConfig(isolation="auto"))}
    if compare_reuse:  # kernels reset and reused in place: the opt-in for trusted code, as a baseline
        pools["reuse"] = KernelPool(samples, SandboxConfig(isolation="auto", reuse=True))
    for p in pools.values():
        await p.start()
    pool = pools["fresh"]
    try:
        roll = RolloutConfig(max_tokens=max_tokens, temperature=0.8, cell_timeout=5.0)
        config = SolveConfig(samples=samples, tir_ratio=1.0, seed=1, rollout=roll, warm_prefix=warm)
        # warm-up at full size: the CPU kernels are built per batch shape on first use
        for p in pools.values():
            await solve(PROBLEM, backend, p, SolveConfig(samples=samples, tir_ratio=1.0, seed=99, rollout=roll))
        totals = {name: [0, 0.0, 0, 0.0] for name in pools}  # agent tokens, agent s, plain tokens, plain s
        for rep in range(reps):
            for name, p in pools.items():  # the same seeds in both; each arm against plain runs of its own samples
                t0 = time.monotonic()
                result = await solve(PROBLEM, backend, p, replace(config, seed=rep + 1))
                agent_s = time.monotonic() - t0
                agent_tok = sum(t.tokens for t in result.traces)
                cells = sum(t.tool_calls for t in result.traces)
                plain_tok, plain_s = await _plain(backend, result.traces, 0.8)
                tot = totals[name]
                totals[name] = [tot[0] + agent_tok, tot[1] + agent_s, tot[2] + plain_tok, tot[3] + plain_s]
                print(f"run {rep + 1}: agent ({name} kernels) {samples} TIR samples, {agent_tok} tokens, {cells} "
                      f"code cells, {agent_s:.2f} s -> {agent_tok / agent_s:.1f} tok/s | plain {plain_tok} tokens, "
                      f"{plain_s:.2f} s -> {plain_tok / plain_s:.1f} tok/s")
        ratios = {}
        for name, (a_tok, a_s, p_tok, p_s) in totals.items():
            ratios[name] = (a_tok / a_s) / (p_tok / p_s)
            label = "" if name == "fresh" else f" ({name} kernels)"
            print(f"engine tokens/s under the agent{label}: {a_tok / a_s:.1f}; plain generation: {p_tok / p_s:.1f}")
            print(f"ratio agent/plain tokens per second{label}: {ratios[name]:.3f}  (target >= 0.9)")
        if compare_reuse:
            print(f"fresh kernels against kernels reused in place (ratio of the two ratios): "
                  f"{ratios['fresh'] / ratios['reuse']:.3f}")
        # the loop alone, without tools: CoT samples through solve vs the same plain requests
        t0 = time.monotonic()
        cot = await solve(PROBLEM, backend, None, replace(config, tir_ratio=0.0, seed=7))
        cot_s = time.monotonic() - t0
        cot_tok = sum(t.tokens for t in cot.traces)
        cplain_tok, cplain_s = await _plain(backend, cot.traces, 0.8)
        print(f"CoT only (loop, no tools): agent {cot_tok / cot_s:.1f} tok/s, plain {cplain_tok / cplain_s:.1f} "
              f"tok/s, ratio {(cot_tok / cot_s) / (cplain_tok / cplain_s):.3f}")
        policy = StopAtFirst()
        long_roll = RolloutConfig(max_tokens=max_tokens * 4, temperature=0.8, cell_timeout=5.0)
        cfg = SolveConfig(samples=samples, tir_ratio=0.5, seed=2, rollout=long_roll)
        res = await solve(PROBLEM, backend, pool, cfg, policy=policy)
        stop_s = time.monotonic() - (policy.decided_at or time.monotonic())
        aborted = sum(t.finish == "aborted" for t in res.traces)
        print(f"abort: settled after {res.seconds:.2f} s; {aborted} running samples aborted; "
              f"decision to return: {stop_s * 1000:.1f} ms")
        print(f"(seed of sample 0: {sample_seed(1, PROBLEM.id, 0)}; dtype {dtype})")
    finally:
        await backend.close()
        for p in pools.values():
            await p.close()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m agent.bench", description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--max-tokens", type=int, default=384)
    p.add_argument("--dtype", default="auto")
    p.add_argument("--no-warm-prefix", action="store_true", help="start all samples at once")
    p.add_argument("--reps", type=int, default=3, help="measured agent/plain pairs (default 3)")
    p.add_argument("--compare-reuse", action="store_true",
                   help="also run each rep on a pool that reuses kernels in place, and print fresh/reuse")
    a = p.parse_args()
    for name in ("samples", "max_tokens", "reps"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    asyncio.run(run(a.samples, a.max_tokens, a.dtype, not a.no_warm_prefix, a.reps, a.compare_reuse))


if __name__ == "__main__":
    main()
