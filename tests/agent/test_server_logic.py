"""Server client logic without a server: error messages, stop restoration, text-mode ids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.backends.base import GenParams
from agent.backends.errors import BackendUnavailable, ServerDown, ServerError, error_message
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
    assert isinstance(down, BackendUnavailable) and "http://h:1" in str(down)


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
