"""Session-wide shared fixtures: the default model folder, one vLLM engine, one vLLM server.

Each is started lazily, only when a test asks for it, and shared by every test module of the
session (the engine lives on the session event loop: pyproject sets asyncio session loop
scope for fixtures and tests). Fixtures:

- `default_model_dir` -> Path: the converted SmolLM2-135M-Instruct folder (float32).
- `vllm_backend` -> VLLMEngineBackend on that folder (float32, the model's own 8k context), closed
  at the end of the session.
- `server_url` -> "http://127.0.0.1:PORT": `python -m vllm.entrypoints.openai.api_server` on
  that folder (served model name = the folder path, float32, 1 GiB KV cache), killed with
  its process group at the end; it runs the TIP logits processor. Its log goes to a temporary file quoted on a failed start.
  `TIRMATH_TEST_SERVER=URL` uses a server already started that way instead.
- `pool` -> a warm 4-kernel `KernelPool` (best isolation here), one per test module that asks.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

SERVER_START_TIMEOUT = 600.0


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    from agent.models import default_model_dir as convert

    return convert()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def vllm_backend(default_model_dir: Path) -> AsyncIterator[Any]:
    from agent.backends.vllm_engine import VLLMEngineBackend

    backend = await VLLMEngineBackend.create(
        str(default_model_dir), dtype="float32", max_model_len=None, seed=0, kv_cache_gib=2
    )
    try:
        yield backend
    finally:
        await backend.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"vLLM server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/v1/models", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1.0)
    pytest.fail(f"vLLM server not ready after {SERVER_START_TIMEOUT:.0f} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    try:  # the engine core child may outlive the server process
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


def start_vllm_server(model_dir: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    """Start vLLM's OpenAI server on a free port in its own process group: (process, url, log file)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE="1", VLLM_ENABLE_V1_MULTIPROCESSING="0")
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
           "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--max-model-len", "4096",
           "--seed", "0", "--enable-prefix-caching",
           # the thought-switching penalty (V1-runner interface: pin the runner on GPU boxes)
           "--logits-processors", "agent.backends.tip_vllm:TIPLogitsProcessor"]
    env["VLLM_USE_V2_MODEL_RUNNER"] = "0"
    try:
        import torch

        if not torch.cuda.is_available():
            cmd += ["--enforce-eager", "--block-size", "32"]
    except ImportError:
        pass
    with tempfile.NamedTemporaryFile("wb", prefix="tirmath-vllm-server-", suffix=".log", delete=False) as f:
        log = Path(f.name)
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
    return proc, url, log


@pytest.fixture(scope="session")
def server_url(default_model_dir: Path) -> Iterator[str]:
    given = os.environ.get("TIRMATH_TEST_SERVER")  # a vLLM server already serving the default model folder
    if given:
        yield given.rstrip("/")
        return
    proc, url, log = start_vllm_server(default_model_dir)
    try:
        _wait_ready(proc, url, log)
        yield url
    finally:
        _stop(proc)
        log.unlink(missing_ok=True)


@pytest.fixture(scope="module")
async def pool() -> AsyncIterator[Any]:
    """A warm kernel pool (4 kernels, the machine's best isolation) for one test module's TIR samples."""
    from sandbox.pool import KernelPool, SandboxConfig

    p = KernelPool(4, SandboxConfig(isolation="auto"))
    await p.start()
    yield p
    await p.close()
