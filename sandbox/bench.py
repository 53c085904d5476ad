"""`python -m sandbox.bench`: sandbox speed figures, with isolation on, against baselines.

Prints: fresh-kernel start time (cold and from the template, one at a time, p50/p90); warm hand-out (acquire) from a
fresh-kernel pool and from a reuse-in-place pool; small-cell round trip; cells/s with N
concurrent sessions when every sample gets a fresh kernel against reuse-in-place in the same
run (as ratios: "burst" until the last sample ends, "sustained" until the pool is warm again,
i.e. with the replacement kernels' starts paid); and the AIMO-notebook way (a fresh `python`
subprocess per cell) as a ratio. Nothing is asserted; the figures are for people. Targets:
round trip p50 < 10 ms, hand-out < 5 ms, >= 20x faster than a subprocess per cell for sympy.

A fresh-kernel pool of N sessions holds up to 2N kernels (~90 MB each): on a small shared box
use e.g. `--concurrency 16`; a bigger one: `--concurrency 16 64 --spares 16`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from sandbox import isolation, template
from sandbox.config import SandboxConfig
from sandbox.kernel import KernelSession
from sandbox.pool import KernelPool

SMALL_CELL = "x = 1 + 1\nprint(x)"
SYMPY_CELL = "import sympy\nprint(sympy.factorint(2**64 - 1))"


def _ms(xs: list[float]) -> str:
    xs = sorted(xs)
    p90 = xs[min(len(xs) - 1, int(0.9 * len(xs)))]
    return f"p50 {statistics.median(xs) * 1000:8.2f} ms   p90 {p90 * 1000:8.2f} ms   (n={len(xs)})"


async def _timed(coro_fn, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await coro_fn()
        out.append(time.perf_counter() - t)
    return out


def _subprocess_cell(code: str, n: int) -> list[float]:
    out = []
    with tempfile.TemporaryDirectory() as d:
        for _ in range(n):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], cwd=d, capture_output=True, check=True, timeout=60)
            out.append(time.perf_counter() - t)
    return out


async def _starts(config: SandboxConfig, n: int, use_template: bool) -> list[float]:
    """Start (and close) n kernels one after another, cold or from the template."""
    report = await asyncio.to_thread(isolation.resolve, config.isolation, config.bwrap)
    if use_template and not template.usable(report):
        return []
    base = tempfile.mkdtemp(prefix="tirmath-sbx-")
    os.chmod(base, 0o711)
    tmpl = await template.KernelTemplate.start(config, base) if use_template else None
    out = []
    try:
        for _ in range(n):
            t = time.perf_counter()
            s = await KernelSession.create(report, config, base, tmpl)
            out.append(time.perf_counter() - t)
            await s.close()
    finally:
        if tmpl is not None:
            await tmpl.close()
        shutil.rmtree(base, ignore_errors=True)
    return out


async def _hand_outs(config: SandboxConfig, n: int) -> list[float]:
    """acquire() time with the pool warm (its refill or reset done before each acquire)."""
    out = []
    async with KernelPool(1, config) as pool:
        for _ in range(n):
            await pool.wait_idle()
            t = time.perf_counter()
            s = await pool.acquire()
            out.append(time.perf_counter() - t)
            await s.run("pass")
            await pool.release(s)
    return out


@dataclass(frozen=True)
class Throughput:
    cells: int
    burst: float  # seconds until the last sample ended
    sustained: float  # ... and until every returned kernel was destroyed/reset and replaced
    latency: list[float]
    acquire: list[float]


async def _throughput(config: SandboxConfig, sessions: int, samples: int, cells: int, think: float) -> Throughput:
    """`sessions` tasks at once, each running `samples` samples of `cells` small cells."""
    lat: list[float] = []
    acq: list[float] = []

    async def worker() -> None:
        for _ in range(samples):
            t = time.perf_counter()
            async with pool.session() as s:
                acq.append(time.perf_counter() - t)
                for _ in range(cells):
                    t = time.perf_counter()
                    r = await s.run(SMALL_CELL)
                    lat.append(time.perf_counter() - t)
                    assert r.status == "ok", r
                    if think:
                        await asyncio.sleep(think)

    async with KernelPool(sessions, config) as pool:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(sessions)))
        burst = time.perf_counter() - t0
        await pool.wait_idle()
        sustained = time.perf_counter() - t0
    return Throughput(len(lat), burst, sustained, lat, acq)


async def _compare(config: SandboxConfig, a: argparse.Namespace) -> None:
    for n in a.concurrency:
        reuse = await _throughput(dataclasses.replace(config, reuse=True), n, a.samples, a.cells, a.think)
        fresh = await _throughput(dataclasses.replace(config, spares=a.spares, template=not a.no_template),
                                  n, a.samples, a.cells, a.think)
        rb, rs = reuse.cells / reuse.burst, reuse.cells / reuse.sustained
        fb, fs = fresh.cells / fresh.burst, fresh.cells / fresh.sustained
        head = f"{n} sessions x {a.samples} samples x {a.cells} cells"
        print(f"{head}, reuse in place:  {rb:7.1f} cells/s burst  {rs:7.1f} sustained   cell {_ms(reuse.latency)}")
        print(f"{head}, fresh kernels:   {fb:7.1f} cells/s burst  {fs:7.1f} sustained   cell {_ms(fresh.latency)}")
        print(f"{head}, fresh / reuse:   {fb / rb:7.2f}x burst        {fs / rs:7.2f}x sustained")
        print(f"{head}, acquire fresh    {_ms(fresh.acquire)}   reuse {_ms(reuse.acquire)}")


async def run(a: argparse.Namespace) -> None:
    config = SandboxConfig(isolation=a.sandbox)
    print("\n".join((await asyncio.to_thread(isolation.resolve, a.sandbox, config.bwrap)).describe()))
    print(f"cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    cold = await _starts(config, a.starts, False)
    warm = await _starts(config, a.starts, True)
    print(f"fresh kernel start, cold        {_ms(cold)}   (one at a time)")
    if warm:
        print(f"fresh kernel start, template    {_ms(warm)}   "
              f"{statistics.median(cold) / statistics.median(warm):.1f}x faster than cold")
    else:
        print("fresh kernel start, template    not used here (needs bubblewrap as root)")
    hand_fresh = await _hand_outs(config, a.handouts)
    hand_reuse = await _hand_outs(dataclasses.replace(config, reuse=True), a.handouts)
    print(f"hand-out (acquire), fresh pool  {_ms(hand_fresh)}")
    print(f"hand-out (acquire), reuse pool  {_ms(hand_reuse)}")
    async with KernelPool(1, config) as pool, pool.session() as s:
        t = time.perf_counter()
        await s.run("pass")
        print(f"first cell                      {(time.perf_counter() - t) * 1000:8.2f} ms")
        small = await _timed(lambda: s.run(SMALL_CELL), a.round_trips)
        sym = await _timed(lambda: s.run(SYMPY_CELL), max(1, a.round_trips // 4))
    print(f"small cell round trip           {_ms(small)}")
    print(f"sympy cell round trip           {_ms(sym)}")
    await _compare(config, a)
    sub_small = _subprocess_cell(SMALL_CELL, a.baseline_runs)
    sub_sym = _subprocess_cell(SYMPY_CELL, a.baseline_runs)
    print(f"subprocess per cell, small      {_ms(sub_small)}")
    print(f"subprocess per cell, sympy      {_ms(sub_sym)}")
    print(f"speed-up vs subprocess, small   {statistics.median(sub_small) / statistics.median(small):8.1f}x")
    print(f"speed-up vs subprocess, sympy   {statistics.median(sub_sym) / statistics.median(sym):8.1f}x")


def _count(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sandbox.bench", description=__doc__.splitlines()[0])
    p.add_argument("--concurrency", type=_count, nargs="+", default=[16], help="concurrent sessions (pool sizes)")
    p.add_argument("--samples", type=_count, default=2, help="samples per session in the throughput runs")
    p.add_argument("--cells", type=_count, default=4, help="cells per sample in the throughput runs")
    p.add_argument("--think", type=float, default=0.0, help="seconds between a sample's cells (generation; "
                   "an AIMO sample writes for seconds between cells, 0 makes kernel starts compete with cells)")
    p.add_argument("--spares", type=_count, help="warm spare kernels of the fresh pools (default: the pool size)")
    p.add_argument("--starts", type=_count, default=5, help="kernel starts timed one at a time (cold, template)")
    p.add_argument("--no-template", action="store_true", help="fresh pools cold-start every kernel")
    p.add_argument("--handouts", type=_count, default=5, help="hand-outs timed from a warm pool")
    p.add_argument("--round-trips", type=_count, default=100, help="small cells timed in one session")
    p.add_argument("--sandbox", choices=("auto", "strict", "none"), default="auto")
    p.add_argument("--baseline-runs", type=_count, default=5, help="subprocess-per-cell runs")
    a = p.parse_args(argv)
    asyncio.run(run(a))
    return 0


if __name__ == "__main__":
    sys.exit(main())
