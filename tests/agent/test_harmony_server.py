"""The server client on the gpt-oss family: a scripted OpenAI-compatible server on 127.0.0.1
(aiohttp) that plays a gpt-oss conversation with a tool call on /v1/completions with token-id
prompts, the harmony loop driving it with real kernels; and the real local vLLM server
honouring stop_token_ids, min_p and top-k logprobs keyed by token id."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from agent import harmony
from agent.backends import open_backend
from agent.backends.base import GenParams
from agent.config import RolloutConfig
from agent.rollout import rollout
from agent.types import Problem
from tests.agent.test_harmony import call, final, outputs_in

MODEL = "openai/gpt-oss-120b"
P = Problem(id="s1", text="What is 2**10 mod 1000?", answer="24")


def play(prompt: str) -> str:
    seen = outputs_in(prompt)
    if not seen:
        return call("n = 2**10 % 1000\nprint(n)")
    return final(f"So the answer is \\boxed{{{seen[-1].strip()}}}.")


@pytest_asyncio.fixture(loop_scope="session")
async def gpt_oss_server() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    from aiohttp import web

    enc = harmony.encoding()
    bodies: list[dict[str, Any]] = []

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": MODEL, "root": MODEL}]})

    async def completions(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if not body.get("stream"):  # tirmath's capability probe at open(): answer as vLLM would
            part = [int(i) for i in enc.encode(" 1 2 3", allowed_special="all")][: body["max_tokens"]]
            choice = {"index": 0, "text": enc.decode(part), "token_ids": part, "finish_reason": "length",
                      "stop_reason": None}
            if body.get("logprobs"):
                choice["logprobs"] = {"top_logprobs": [{f"token_id:{t}": -0.1} for t in part]}
            return web.json_response({"choices": [choice]})
        bodies.append(body)
        ids = [int(i) for i in enc.encode(play(enc.decode(body["prompt"])), allowed_special="all")]
        stops = [n for n, t in enumerate(ids) if t in body.get("stop_token_ids", [])]
        ids, finish = (ids[: stops[0] + 1], "stop") if stops else (ids, "length")
        ids = ids[: body["max_tokens"]]
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(0, len(ids), 4):
            part = ids[i : i + 4]
            choice: dict[str, Any] = {"index": 0, "text": enc.decode(part), "token_ids": part,
                                      "finish_reason": finish if i + 4 >= len(ids) else None}
            if body.get("logprobs"):
                choice["logprobs"] = {"top_logprobs": [{f"token_id:{t}": -0.1, f"token_id:{t + 1}": -2.5}
                                                       for t in part]}
            await resp.write(f"data: {json.dumps({'choices': [choice]})}\n\n".encode())
        await resp.write(b"data: [DONE]\n\n")
        return resp

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/completions", completions)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/v1", bodies
    finally:
        await runner.cleanup()


async def test_gpt_oss_conversation_with_a_tool_call_over_the_server(gpt_oss_server) -> None:
    from sandbox.pool import KernelPool, SandboxConfig

    url, bodies = gpt_oss_server
    backend = await open_backend(model=MODEL, server=url)  # no Hugging Face tokenizer exists for it here
    assert isinstance(backend.tokenizer, harmony.HarmonyTokenizer)
    pool = KernelPool(1, SandboxConfig(isolation="auto", start_timeout=300.0))
    await pool.start()
    try:
        t = await rollout(P, backend, pool, "tir", RolloutConfig(record_tokens=True, logprobs=2))
    finally:
        await backend.close()
        await pool.close()
    assert (t.finish, t.tool_calls, t.error) == ("answer", 1, None)
    assert t.answer is not None and t.answer.value == 24
    assert outputs_in(harmony.decode(bodies[1]["prompt"])) == ["24"]  # the kernel's output went back
    assert bodies[0]["prompt"] == harmony.prompt_ids(P, "tir", "high")
    assert all(set(b["stop_token_ids"]) == set(harmony.stop_token_ids()) for b in bodies)
    assert all(b["logprobs"] == 2 and b["return_tokens_as_token_ids"] for b in bodies)
    assert t.mean_entropy is not None and t.mean_entropy > 0
    assert [m for m in t.mask if m == 0] and len(t.mask) == len(t.token_ids)


@pytest.mark.server
@pytest.mark.slow
async def test_real_server_stop_ids_min_p_and_logprobs(server_url: str, default_model_dir: Path) -> None:
    from agent.backends.server import ServerBackend

    backend = await ServerBackend.open(server_url, model=str(default_model_dir))
    try:
        prompt = backend.tokenizer.encode("The capital of France is", add_special_tokens=False)
        greedy = GenParams(max_tokens=10, temperature=0.0, logprobs=3, min_p=0.05)
        chunks = [c async for c in backend.stream(prompt, greedy, "lp")]
        ids = [i for c in chunks for i in c.token_ids]
        per_token = [lp for c in chunks for lp in (c.logprobs or ())]
        assert len(per_token) == len(ids) and all(1 <= len(t) <= 4 for t in per_token)
        assert all(top[0][0] == i for top, i in zip(per_token, ids, strict=True))  # greedy: the top id is the pick
        k = next(n for n in range(2, len(ids)) if ids[n] not in ids[:n])
        stopped = [c async for c in backend.stream(prompt, GenParams(10, 0.0, stop_token_ids=(ids[k],)), "st")]
        assert [i for c in stopped for i in c.token_ids] == ids[: k + 1] and stopped[-1].finish_reason == "stop"
    finally:
        await backend.close()
