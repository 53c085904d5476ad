"""The OpenAI-server backend against one real local vLLM server (shared session fixture)."""

from __future__ import annotations

import asyncio
import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from agent.backends.base import Backend, GenParams
from agent.backends.server import ServerBackend
from tests.agent.test_backends_vllm import CODE_PROMPT, chat_ids, collect, joined

pytestmark = [pytest.mark.server, pytest.mark.slow]


def metric(url: str, name: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as r:
        text = r.read().decode()
    values = [float(m) for m in re.findall(rf"^{re.escape(name)}{{[^}}]*}} (\S+)$", text, re.M)]
    assert values, f"metric {name} missing"
    return sum(values)


async def test_open_finds_model_and_tokenizer(server_url: str, default_model_dir: Path) -> None:
    backend = await ServerBackend.open(server_url)
    try:
        assert isinstance(backend, Backend)
        assert backend.model == str(default_model_dir)
        assert backend.tokenizer.eos_token == "<|im_end|>"
    finally:
        await backend.close()


async def test_streams_stops_and_matches_the_engine(server_url: str, default_model_dir: Path,
                                                    vllm_backend: Any) -> None:
    backend = await ServerBackend.open(server_url, model=str(default_model_dir))
    try:
        ids = chat_ids(backend.tokenizer, CODE_PROMPT)
        greedy = GenParams(max_tokens=60, temperature=0)
        chunks = await collect(backend, ids, greedy, "s-greedy")
        assert len(chunks) > 1 and chunks[-1].finish_reason == "length"
        engine = await collect(vllm_backend, ids, greedy, "s-engine")
        assert joined(chunks) == joined(engine)

        stopped = await collect(backend, ids, GenParams(max_tokens=200, temperature=0, stop=("print(",)), "s-stop")
        text, toks = joined(stopped)
        assert text.endswith("print(") and stopped[-1].stop_reason == "print("
        assert backend.tokenizer.decode(toks) == text
    finally:
        await backend.close()


async def test_abort_and_break_cancel_on_the_server(server_url: str) -> None:
    backend = await ServerBackend.open(server_url)
    try:
        ids = chat_ids(backend.tokenizer, CODE_PROMPT)  # greedy: 127 tokens before its EOS
        params = GenParams(max_tokens=100, temperature=0)
        before = metric(server_url, "vllm:generation_tokens_total")
        got: list[Any] = []

        async def run() -> None:
            async for c in backend.stream(ids, params, "s-abort"):
                got.append(c)

        task = asyncio.create_task(run())
        while len(got) < 3:
            await asyncio.sleep(0.05)
        await backend.abort("s-abort")
        await task
        assert got[-1].finish_reason == "abort"

        n = 0
        async for _ in backend.stream(ids, params, "s-break"):
            n += 1
            if n == 3:
                break
        for _ in range(300):  # the server notices the closed connections and aborts both
            if metric(server_url, "vllm:num_requests_running") == 0:
                break
            await asyncio.sleep(0.1)
        assert metric(server_url, "vllm:num_requests_running") == 0
        generated = metric(server_url, "vllm:generation_tokens_total") - before
        assert generated < 150  # both would have run to 100 tokens each without the cancel
    finally:
        await backend.close()
