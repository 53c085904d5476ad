"""`python -m evals.scale_bench`: one client over N local vLLM servers, and a server's death.

Starts local vLLM OpenAI servers on the default model (127.0.0.1, each with a 1 GiB KV cache)
and runs the same CoT eval workload through one `FailoverBackend`:
1. over 1 server, then over 2: samples/s, printed as a ratio against the single server
   (on one small CPU box the servers share the cores, so expect about 1x; on GPU nodes, one
   server per GPU, expect about Nx);
2. over 2 servers, one SIGKILLed once both are generating: the seconds from the kill to the first
   and to the last of its in-flight requests streaming again on the other server (target: under
   2 s), and whether every sample was stored once with none in error.
Prints figures, asserts nothing. Options: --problems P (4), --samples S (4), --max-tokens T (96).
Not covered: GPU placement, data parallelism inside one server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from agent.config import RolloutConfig, SolveConfig
from agent.types import Problem
from evals.runner import RunConfig, open_store, run_problems


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(model_dir: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """vLLM's OpenAI server on a free port, in its own process group; waits until it answers."""
    port = _port()
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE="1", VLLM_ENABLE_V1_MULTIPROCESSING="0")
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model_dir, "--host", "127.0.0.1",
           "--port", str(port), "--dtype", "float32", "--max-model-len", "4096", "--seed", "0",
           "--enable-prefix-caching", "--enforce-eager", "--block-size", "32"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"vLLM server exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/v1/models", timeout=2):
                return proc, url
        except OSError:
            time.sleep(1.0)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def _problems(n: int) -> list[Problem]:
    return [Problem(f"b{i}", f"What is {i} times {i + 7}? Explain step by step.", str(i * (i + 7)))
            for i in range(1, n + 1)]


async def _workload(urls: list[str], a: argparse.Namespace, folder: Path,
                    victim: subprocess.Popen[bytes] | None = None) -> dict[str, Any]:
    from agent.backends.failover import FailoverBackend

    backend = await FailoverBackend.open(urls, retry_after=3600)
    problems = _problems(a.problems)
    roll = RolloutConfig(max_tokens=a.max_tokens, temperature=0.8)
    cfg = RunConfig(solve=SolveConfig(samples=a.samples, tir_ratio=0.0, rollout=roll), concurrency=2)
    store = open_store(str(folder), problems, cfg, "scale-bench")
    killed = None
    t0 = time.perf_counter()
    try:
        run = asyncio.create_task(run_problems(problems, [backend], None, cfg, store))
        if victim is not None:
            while not all(m.outstanding for m in backend.members) and not run.done():
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            os.killpg(victim.pid, signal.SIGKILL)
            killed = time.monotonic()
        data = await run
    finally:
        store.close()
        await backend.close()
    seconds = time.perf_counter() - t0
    recs = data.all_samples()
    out: dict[str, Any] = {"seconds": seconds, "samples": len(recs), "errors": sum(r.finish == "error" for r in recs),
           "rate": len(recs) / seconds}
    if killed is not None and backend.events:
        resumed = backend.events[0].resumed
        out["first"] = min(resumed) - killed if resumed else None
        out["last"] = max(resumed) - killed if resumed else None
        out["moved"] = len(resumed)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m evals.scale_bench", description=__doc__.split("\n")[0])
    p.add_argument("--problems", type=int, default=4)
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--max-tokens", type=int, default=96)
    a = p.parse_args(argv)
    from agent.models import default_model_dir

    model = str(default_model_dir())
    with tempfile.TemporaryDirectory(prefix="tirmath-scale-") as tmp:
        root = Path(tmp)
        procs = [start_server(model, root / f"server{i}.log") for i in range(2)]
        try:
            urls = [u for _, u in procs]
            asyncio.run(_workload(urls[:1], a, root / "warm"))  # first-request costs out of the way
            one = asyncio.run(_workload(urls[:1], a, root / "one"))
            two = asyncio.run(_workload(urls, a, root / "two"))
            dead = asyncio.run(_workload(urls, a, root / "dead", victim=procs[1][0]))
        finally:
            for proc, _ in procs:
                stop_server(proc)
    n = a.problems * a.samples
    print(f"workload: {a.problems} problems x {a.samples} CoT samples, up to {a.max_tokens} tokens each ({n} samples)")
    print(f"1 server : {one['rate']:.2f} samples/s ({one['seconds']:.1f} s)")
    print(f"2 servers: {two['rate']:.2f} samples/s ({two['seconds']:.1f} s) = {two['rate'] / one['rate']:.2f}x one server")
    first, last = dead.get("first"), dead.get("last")
    print(f"2 servers, one SIGKILLed mid-run: {dead['samples']}/{n} samples stored, {dead['errors']} in error, "
          f"{dead.get('moved', 0)} in-flight requests moved; kill -> first resumed elsewhere "
          f"{first if first is None else f'{first:.2f} s'}, last {last if last is None else f'{last:.2f} s'} "
          "(target: under 2 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
