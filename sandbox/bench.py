"""`python -m sandbox.bench`: sandbox speed figures, with isolation on, against a baseline.

Prints kernel start time, warm hand-out time, small-cell round trip (p50/p90), N sessions
running cells concurrently, and the same cells run the AIMO-notebook way (a fresh `python`
subprocess per cell, same isolation-free baseline every notebook used) as a ratio. Nothing
is asserted; the figures are for people. Targets: round trip p50 < 10 ms, hand-out < 5 ms,
>= 20x faster than a subprocess per cell for a cell that uses sympy.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time

from sandbox.config import SandboxConfig
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


async def _concurrent(pool: KernelPool, sessions: int, cells: int) -> tuple[float, list[float]]:
    lat: list[float] = []

    async def one(i: int) -> None:
        async with pool.session() as s:
            for _ in range(cells):
                t = time.perf_counter()
                r = await s.run(SMALL_CELL)
                lat.append(time.perf_counter() - t)
                assert r.status == "ok", r

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(sessions)))
    return time.perf_counter() - t0, lat


async def run(sessions: int, cells: int, isolation: str, baseline_runs: int) -> None:
    config = SandboxConfig(isolation=isolation)
    t = time.perf_counter()
    pool = KernelPool(sessions, config)
    await pool.start()
    start_all = time.perf_counter() - t
    try:
        print("\n".join(pool.isolation.describe()))
        starts = sorted(k.start_seconds for k in pool.kernels)
        print(f"kernel start (each, {sessions} started together on {__import__('os').cpu_count()} cores): "
              f"median {statistics.median(starts):.2f} s; pool of {sessions} ready in {start_all:.2f} s")
        async with pool.session() as s:
            t = time.perf_counter()
            await s.run("pass")
            print(f"first cell                      {(time.perf_counter() - t) * 1000:8.2f} ms")
            small = await _timed(lambda: s.run(SMALL_CELL), cells)
            sym = await _timed(lambda: s.run(SYMPY_CELL), cells // 4)
        await pool.wait_idle()
        hand = []
        for _ in range(50):
            t = time.perf_counter()
            s = await pool.acquire()
            hand.append(time.perf_counter() - t)
            await pool.release(s)
            await pool.wait_idle()
        total, lat = await _concurrent(pool, sessions, max(10, cells // 10))
        print(f"small cell round trip           {_ms(small)}")
        print(f"sympy cell round trip           {_ms(sym)}")
        print(f"warm hand-out (acquire)         {_ms(hand)}")
        print(f"{sessions} sessions concurrently      {_ms(lat)}   "
              f"{len(lat) / total:.0f} cells/s overall")
        print(f"recycling on release            {pool.recycled}")
    finally:
        await pool.close()
    sub_small = _subprocess_cell(SMALL_CELL, baseline_runs)
    sub_sym = _subprocess_cell(SYMPY_CELL, baseline_runs)
    print(f"subprocess per cell, small      {_ms(sub_small)}")
    print(f"subprocess per cell, sympy      {_ms(sub_sym)}")
    print(f"speed-up vs subprocess, small   {statistics.median(sub_small) / statistics.median(small):8.1f}x")
    print(f"speed-up vs subprocess, sympy   {statistics.median(sub_sym) / statistics.median(sym):8.1f}x")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sandbox.bench", description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=16, help="pool size and concurrent sessions")
    p.add_argument("--cells", type=int, default=200, help="small cells timed in one session")
    p.add_argument("--sandbox", choices=("auto", "strict", "none"), default="auto")
    p.add_argument("--baseline-runs", type=int, default=10, help="subprocess-per-cell runs")
    a = p.parse_args(argv)
    asyncio.run(run(a.sessions, a.cells, a.sandbox, a.baseline_runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
