"""The OpenAI-server backend against one real local vLLM server (shared session fixture): probing,
both request shapes, stops, aborts, error messages, and the TIR loop with a vote."""

from __future__ import annotations

import asyncio
import re
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agent.backends.base import Backend, GenParams
from agent.backends.errors import ServerError
from agent.backends.server import ServerBackend
from agent.backends.server_probe import ServerCaps
from tests.agent.test_backends_vllm import CODE_PROMPT, chat_ids, collect, joined
from tests.agent.tir_checks import check_tir_and_vote

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




async def test_probe_finds_what_vllm_accepts(server_url: str, default_model_dir: Path) -> None:
    backend = await ServerBackend.open(server_url, model=str(default_model_dir))
    try:
        assert backend.caps == ServerCaps(token_prompts=True, token_ids_out=True, keeps_stop=True, logprobs=True,
                                          max_model_len=4096)
        assert backend.max_model_len == 4096
    finally:
        await backend.close()


async def test_text_shape_restores_stop_strings_and_matches_the_id_shape(server_url: str) -> None:
    backend = await ServerBackend.open(server_url)
    try:
        ids = chat_ids(backend.tokenizer, CODE_PROMPT)
        params = GenParams(max_tokens=120, temperature=0, stop=("```\n",))
        by_ids = await collect(backend, ids, params, "s-ids")
        backend.caps = replace(backend.caps, token_prompts=False, token_ids_out=False, keeps_stop=False)
        assert isinstance(backend.request_body(ids, params)["prompt"], str)
        by_text = await collect(backend, ids, params, "s-text")
        assert joined(by_text)[0] == joined(by_ids)[0] and joined(by_text)[0].endswith("```\n")
        assert by_text[-1].finish_reason == "stop" and by_text[-1].stop_reason == "```\n"
        assert joined(by_text)[1] == joined(by_ids)[1]  # plain code retokenises to the same ids here
    finally:
        await backend.close()


async def test_http_error_carries_the_servers_message(server_url: str) -> None:
    backend = await ServerBackend.open(server_url)
    try:
        with pytest.raises(ServerError) as err:
            await collect(backend, [1, 2, 3], GenParams(max_tokens=5000), "s-err")
        assert err.value.status == 400
        assert "max_tokens=5000 cannot be greater than max_model_len=4096" in str(err.value)
        assert "\n" not in str(err.value)
    finally:
        await backend.close()


async def test_tir_loop_runs_code_and_votes_on_the_vllm_server(server_url: str, pool: Any) -> None:
    backend = await ServerBackend.open(server_url)
    try:
        await check_tir_and_vote(backend, pool)
    finally:
        await backend.close()
