"""`python -m evals.bench`: how fast the run store and the run machinery are. Prints, never asserts.

1. Store write and read rates (records/s, MB/s) with realistic traces (~8k generated tokens:
   ~32k characters of prose, code cells and outputs), each write flushed and fsynced, against
   the 10 000 samples an hour (2.8/s) the store must sustain: printed as a headroom ratio.
2. Run-machinery overhead per sample: the same problems solved by `agent.solve` alone
   (asyncio.gather, same concurrency) and through `runner.run_problems` with the store, over a
   fake fast backend, so the overhead (grading, JSON, fsync, bookkeeping) is what shows.
Options: --records N (default 300), --problems P (default 40), --samples S (default 8).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from agent.config import RolloutConfig, SolveConfig
from agent.types import Answer, Problem, Step, Trace
from evals.runner import RunConfig, open_store, run_problems
from evals.store import RECORDS, RunStore, read_run, sample_record
from tests.fakes import FakeBackend, FakePool

TARGET_PER_SECOND = 10_000 / 3600


def realistic_trace(index: int, chars: int = 32_000) -> Trace:
    """A TIR trace of about `chars` characters (~8k tokens) with 4 code cells."""
    para = "We consider the residues modulo 7 and check each case carefully; the sum telescopes. "
    steps: list[Step] = []
    for k in range(4):
        steps.append(Step("text", para * (chars // (5 * len(para)))))
        steps.append(Step("code", f"```python\nfrom sympy import *\nprint(sum(i**{k} for i in range(100)))\n```\n"))
        steps.append(Step("output", f"```output\n{sum(i**k for i in range(100))}\n```\n", "ok", 0.01))
    steps.append(Step("text", para * (chars // (5 * len(para))) + "\\boxed{42}"))
    return Trace("p", index, index, "tir", tuple(steps), Answer("42", 42, "boxed"), "answer", 8000, 4,
                 prompt_tokens=200, seconds=30.0)


def bench_store(n: int, folder: Path) -> None:
    problem = Problem("p", "A problem?", "42")
    recs = [sample_record(problem, realistic_trace(i)) for i in range(n)]
    t0 = time.perf_counter()
    with RunStore(folder, {"bench": True}) as store:
        for r in recs:
            store.add_sample(r)
    write = time.perf_counter() - t0
    size = (folder / RECORDS).stat().st_size
    t0 = time.perf_counter()
    data = read_run(folder)
    read = time.perf_counter() - t0
    assert len(data.all_samples()) == n
    print(f"store: {n} records of {size / n / 1024:.0f} KiB (~8k-token TIR traces)")
    print(f"  write (flush+fsync each): {n / write:8.1f} records/s, {size / write / 1e6:6.1f} MB/s "
          f"-> {n / write / TARGET_PER_SECOND:,.0f}x the 10 000 samples/hour needed")
    print(f"  read  (parse + rebuild):  {n / read:8.1f} records/s, {size / read / 1e6:6.1f} MB/s "
          f"-> {n / read / TARGET_PER_SECOND:,.0f}x")


async def _agent_alone(problems: list[Problem], cfg: RunConfig) -> float:
    from agent.solve import solve

    backend, pool = FakeBackend(answers=[42, 7], pad=2000, chunk=512), FakePool()
    sem = asyncio.Semaphore(cfg.concurrency)

    async def one(p: Problem) -> None:
        async with sem:
            await solve(p, backend, pool, cfg.solve_config())

    t0 = time.perf_counter()
    await asyncio.gather(*(one(p) for p in problems))
    return time.perf_counter() - t0


async def _with_runner(problems: list[Problem], cfg: RunConfig, folder: Path) -> float:
    backend, pool = FakeBackend(answers=[42, 7], pad=2000, chunk=512), FakePool()
    t0 = time.perf_counter()
    store = open_store(str(folder), problems, cfg, "bench")
    try:
        await run_problems(problems, [backend], pool, cfg, store)
    finally:
        store.close()
    return time.perf_counter() - t0


def bench_overhead(n_problems: int, samples: int, folder: Path) -> None:
    problems = [Problem(f"b{i}", f"Bench problem {i}?", "42") for i in range(n_problems)]
    cfg = RunConfig(solve=SolveConfig(samples=samples, tir_ratio=0.5, rollout=RolloutConfig(max_tokens=4096)), concurrency=4)
    asyncio.run(_agent_alone(problems[:2], cfg))  # warm up imports
    alone = asyncio.run(_agent_alone(problems, cfg))
    runner = asyncio.run(_with_runner(problems, cfg, folder))
    n = n_problems * samples
    per = (runner - alone) / n * 1000
    print(f"run machinery: {n_problems} problems x {samples} samples on a fake fast backend")
    print(f"  agent alone: {alone:6.2f} s ({alone / n * 1000:.2f} ms/sample)")
    print(f"  with runner: {runner:6.2f} s ({runner / n * 1000:.2f} ms/sample)")
    print(f"  overhead: {per:+.2f} ms/sample, ratio runner/alone = {runner / alone:.2f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m evals.bench", description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=300)
    p.add_argument("--problems", type=int, default=40)
    p.add_argument("--samples", type=int, default=8)
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        bench_store(a.records, Path(tmp) / "store")
        bench_overhead(a.problems, a.samples, Path(tmp) / "run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
