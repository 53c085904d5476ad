"""Server client logic without a server: error messages, stop restoration, text-mode ids."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from agent.backends.base import BackendError, GenParams
from agent.backends.errors import ServerDown, ServerError, error_message
from agent.backends.server import ServerBackend, _Decoder
from agent.backends.server_probe import ServerCaps


@pytest.mark.parametrize("body, want", [
    (b'{"object":"error","message":"This model\'s maximum context length is 4096 tokens.","code":400}',
     "This model's maximum context length is 4096 tokens."),
    (b'{"detail":[{"type":"string_type","loc":["body","prompt"],"msg":"Input should be a valid string"}]}',
     "prompt: Input should be a valid string"),
    (b'{"error":{"message":"bad seed","type":"invalid_request_error"}}', "bad seed"),
    (b"Internal Server Error\n\n", "Internal Server Error"),
    (b"", "(empty body)"),
])
def test_error_message_keeps_the_servers_words_on_one_line(body: bytes, want: str) -> None:
    assert error_message(body) == want


def test_error_types_say_server_and_status() -> None:
    e = ServerError("http://h:1", 400, "prompt: Input should be a valid string")
    assert str(e) == "server http://h:1 answered HTTP 400: prompt: Input should be a valid string"
    down = ServerDown("http://h:1", None, "ClientConnectorError: refused")
    assert isinstance(down, BackendError) and "http://h:1" in str(down)


@pytest.fixture(scope="module")
def tokenizer(default_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(default_model_dir)


def backend(tokenizer: Any, **caps: Any) -> ServerBackend:
    return ServerBackend("http://127.0.0.1:1/v1", "m", tokenizer, ServerCaps(**caps))


def test_stripped_stop_string_is_restored_and_the_rest_dropped(tokenizer: Any) -> None:
    d = _Decoder(backend(tokenizer, keeps_stop=False, token_ids_out=False), GenParams(10, stop=("```\n",)))
    pieces = ["```python\nprint(1)\n``", "`\nand more", " text"]
    out = [d.feed({"text": p, "finish_reason": None}) for p in pieces[:2]]
    assert d.finished
    text = "".join(c.text for c in out if c)
    assert text == "```python\nprint(1)\n```\n"
    assert out[-1] is not None and out[-1].finish_reason == "stop" and out[-1].stop_reason == "```\n"
    assert tokenizer.decode([i for c in out if c for i in c.token_ids]) == text


def test_text_mode_end_of_sequence_gets_the_eos_id(tokenizer: Any) -> None:
    d = _Decoder(backend(tokenizer, keeps_stop=False, token_ids_out=False), GenParams(10, stop=("```\n",)))
    last = d.feed({"text": "The answer is 3.", "finish_reason": "stop"})
    assert last is not None and last.token_ids[-1] == tokenizer.eos_token_id and last.stop_reason is None
    d2 = _Decoder(backend(tokenizer, keeps_stop=False, token_ids_out=False), GenParams(10))
    cut = d2.feed({"text": "abc", "finish_reason": "length"})
    assert cut is not None and tokenizer.eos_token_id not in cut.token_ids


def test_request_shape_follows_the_capabilities(tokenizer: Any) -> None:
    ids = tokenizer.encode("<|im_start|>user\nhi<|im_end|>\n", add_special_tokens=False)
    params = GenParams(8, stop=("```\n",), seed=3, min_p=0.1, stop_token_ids=(2,), logprobs=1,
                       extra_args=(("penalty", 0.5),))
    vllm_like = backend(tokenizer).request_body(ids, params)
    assert vllm_like["prompt"] == ids and vllm_like["stop"] == ["```\n"] and vllm_like["return_token_ids"]
    assert vllm_like["vllm_xargs"] == {"penalty": 0.5} and vllm_like["min_p"] == 0.1
    assert vllm_like["stop_token_ids"] == [2] and vllm_like["logprobs"] == 1 and vllm_like["seed"] == 3
    text_only = backend(tokenizer, token_prompts=False, token_ids_out=False, keeps_stop=False).request_body(ids, params)
    assert text_only["prompt"] == "<|im_start|>user\nhi<|im_end|>\n"
    assert "stop" not in text_only and "return_token_ids" not in text_only


class TinyServer:
    """A real HTTP server on 127.0.0.1 that answers like a strict text-only server (FastAPI's 422 on
    token-id prompts), for the request-shape logic; `refuse_all` makes it refuse every completion."""

    def __init__(self, refuse_all: bool = False) -> None:
        self.refuse_all, self.bodies, self.runner, self.url = refuse_all, [], None, ""
        self.fail_after_open = False

    async def start(self) -> str:
        from aiohttp import web

        app = web.Application()
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/completions", self.completions)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/v1"
        return self.url

    async def models(self, request: Any) -> Any:
        from aiohttp import web

        return web.json_response({"data": [{"id": "/models/smollm2.gguf", "object": "model"}]})

    async def completions(self, request: Any) -> Any:
        from aiohttp import web

        body = await request.json()
        self.bodies.append(body)
        if self.refuse_all or self.fail_after_open:
            return web.json_response({"error": {"message": "the model is on fire", "code": 400}}, status=400)
        if not isinstance(body["prompt"], str):
            return web.json_response({"detail": [{"type": "string_type", "loc": ["body", "prompt"],
                                                  "msg": "Input should be a valid string"}]}, status=422)
        text = "" if body.get("stop") else " 8, 9"  # strips stop strings: a stop at the start leaves nothing
        return web.json_response({"choices": [{"text": text, "finish_reason": "stop", "index": 0}]})

    async def stop(self) -> None:
        await self.runner.cleanup()


async def test_text_only_server_is_found_at_open_and_named_once(default_model_dir: Path, caplog: Any) -> None:
    srv = TinyServer()
    url = await srv.start()
    try:
        b = await ServerBackend.open(url, model=str(default_model_dir))
        assert b.model == "/models/smollm2.gguf"  # the served name, tokenizer from the local folder
        assert (b.caps.token_prompts, b.caps.token_ids_out, b.caps.keeps_stop) == (False, False, False)
        notes = [r.getMessage() for r in caplog.records if "text prompts only" in r.getMessage()]
        assert len(notes) == 1 and "tokenised differently" in notes[0]
        await b.close()
    finally:
        await srv.stop()


async def test_refused_request_shape_is_one_error_at_open(default_model_dir: Path) -> None:
    from agent.errors import UserError

    srv = TinyServer(refuse_all=True)
    url = await srv.start()
    try:
        with pytest.raises(UserError, match=r"refuses completion requests: the model is on fire \(token-id prompt: "
                                            r"the model is on fire\)"):
            await ServerBackend.open(url, model=str(default_model_dir))
    finally:
        await srv.stop()


async def test_a_server_error_mid_run_is_one_line_with_the_servers_message(default_model_dir: Path) -> None:
    from agent.config import RolloutConfig, SolveConfig
    from agent.solve import solve
    from agent.types import Problem

    srv = TinyServer()
    url = await srv.start()
    try:
        b = await ServerBackend.open(url, model=str(default_model_dir))
        srv.fail_after_open = True
        prob = Problem("p", "What is 1+1?", "2")
        with pytest.raises(ServerError) as err:  # not a silent `answer: None`: the run stops with it
            await solve(prob, b, None, SolveConfig(samples=2, tir_ratio=0.0, rollout=RolloutConfig(max_tokens=8)))
        assert str(err.value) == f"server {url.removesuffix('/v1')} answered HTTP 400: the model is on fire"
        await b.close()
    finally:
        await srv.stop()


def test_error_samples_are_listed_with_their_messages_in_view_and_report(tmp_path: Path) -> None:
    from dataclasses import replace

    from agent.events import Event
    from agent.types import Problem
    from agent.view import LogView
    from evals.metrics import run_metrics
    from evals.report import markdown_report
    from evals.store import read_run
    from tests.evals.helpers import make_run, tir_trace

    bad = replace(tir_trace("p", 1, None), finish="error", error="SampleError: the sandbox could not start a kernel")
    out = io.StringIO()
    LogView(out)(Event("done", 1, trace=bad, status="error"))
    assert "done: error (SampleError: the sandbox could not start a kernel)" in out.getvalue()
    make_run(tmp_path / "run", [Problem("p", "?", "42")], {"p": [tir_trace("p", 0, 42), bad]})
    data = read_run(tmp_path / "run")
    report = markdown_report(data, run_metrics(data))
    assert "## Errors" in report and "| SampleError: the sandbox could not start a kernel | 1 | p#1 |" in report
