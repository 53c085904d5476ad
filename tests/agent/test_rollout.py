"""The TIR loop's logic on a scripted backend and an exec-based pool (the real engine and
sandbox run the same loop in test_agent_real.py)."""

from __future__ import annotations

import asyncio

import pytest

from agent.backends.base import BackendError, GenParams
from agent.config import RolloutConfig
from agent.rollout import find_code, format_output, rollout
from agent.types import Problem
from tests.fakes import EOS, FakePool, FakeResult, ScriptedBackend

P = Problem(id="p1", text="What is 6*7?", answer="42")


def tir_script(prompt: str, params: GenParams) -> str:
    """Writes code until it has seen one output, then answers from the last output."""
    prompt = prompt.rsplit("<assistant>", 1)[1]  # what this sample generated so far
    done = prompt.count("```output")
    if done == 0:
        return "Let me compute.\n```python\nx = 6*7\nprint(x)\n```\nmore"
    if done == 1:
        return "Check with the state kept:\n```python\nprint(x + 0)\n```\n"
    last = prompt.rsplit("```output\n", 1)[1].split("\n", 1)[0]
    return f"So the answer is \\boxed{{{last}}}.<eos>"


async def test_tir_runs_code_feeds_output_and_keeps_state():
    be, pool = ScriptedBackend(tir_script), FakePool()
    t = await rollout(P, be, pool, "tir", RolloutConfig(record_tokens=True), index=3, seed=11)
    assert [s.kind for s in t.steps] == ["text", "code", "output", "text", "code", "output", "text"]
    assert t.steps[2].text == "```output\n42\n```\n"
    assert t.steps[5].text == "```output\n42\n```\n"  # x survived between cells
    assert t.answer is not None and t.answer.value == 42 and t.answer.source == "boxed"
    assert (t.tool_calls, t.finish, t.index, t.seed) == (2, "answer", 3, 11)
    assert len(pool.sessions) == 1 and pool.sessions[0].cells[1] == "print(x + 0)\n"
    await asyncio.sleep(0)
    assert pool.released == pool.sessions
    # every request stopped at the closing fence, so "more" never reached the trace
    assert "more" not in t.completion


async def test_token_ids_and_mask_line_up_with_text():
    be = ScriptedBackend(tir_script)
    t = await rollout(P, be, FakePool(), "tir", RolloutConfig(record_tokens=True))
    assert len(t.token_ids) == len(t.mask)
    assert be.tokenizer.decode(t.token_ids) == t.completion
    outputs = "".join(s.text for s in t.steps if s.kind == "output")
    masked_out = "".join(chr(i) for i, m in zip(t.token_ids, t.mask, strict=True) if m == 0)
    assert masked_out == outputs
    assert t.token_ids[-1] == EOS and t.mask[-1] == 1
    assert t.tokens == sum(t.mask)  # tool output tokens are not counted as generated


async def test_token_budget_ends_with_length():
    be = ScriptedBackend(lambda p, g: "blah " * 100)
    t = await rollout(P, be, None, "cot", RolloutConfig(max_tokens=37))
    assert (t.finish, t.tokens, t.answer) == ("length", 37, None)


async def test_tool_call_cap():
    be = ScriptedBackend(lambda p, g: "again\n```python\nprint(1)\n```\n")
    t = await rollout(P, be, FakePool(), "tir", RolloutConfig(max_tool_calls=2))
    assert (t.finish, t.tool_calls) == ("tool_limit", 2)


async def test_fast_math_stop_after_think_closes():
    reply = "<think>maybe \\boxed{3}? no.</think>The answer is \\boxed{5}. Some rambling that costs tokens." * 3
    be = ScriptedBackend(lambda p, g: reply)
    t = await rollout(P, be, None, "cot", RolloutConfig())
    assert t.finish == "answer" and t.answer is not None and t.answer.value == 5
    assert "rambling" not in t.completion and be.aborted


async def test_plain_fence_is_not_run_and_generation_continues():
    def script(prompt: str, g: GenParams) -> str:
        if "Table:" not in prompt.rsplit("<assistant>", 1)[1]:
            return "Table:\n```\na b\n```\nThen \\boxed{9}<eos>"
        return "Then \\boxed{9}<eos>"

    pool = FakePool()
    t = await rollout(P, ScriptedBackend(script), pool, "tir", RolloutConfig())
    assert t.tool_calls == 0 and not pool.sessions and t.answer is not None and t.answer.value == 9


async def test_cancel_aborts_the_request():
    cancel = asyncio.Event()
    be = ScriptedBackend(lambda p, g: "x" * 400, delay=0.01)
    task = asyncio.create_task(rollout(P, be, None, "cot", RolloutConfig(), cancel=cancel))
    await asyncio.sleep(0.05)
    cancel.set()
    t = await task
    assert t.finish == "aborted" and 0 < t.tokens < 400 and len(be.aborted) == 1


async def test_deadline_ends_with_time():
    import time

    loop_time = time.monotonic
    be = ScriptedBackend(lambda p, g: "y" * 400, delay=0.01)
    t = await rollout(P, be, None, "cot", RolloutConfig(), deadline=loop_time() + 0.05)
    assert t.finish == "time" and t.tokens < 400


async def test_backend_failure_propagates_loudly():
    def dead(p: str, g: GenParams) -> str:
        raise BackendError("server http://127.0.0.1:1 is not answering", "http://127.0.0.1:1")

    with pytest.raises(BackendError, match="not answering"):
        await rollout(P, ScriptedBackend(dead), None, "cot", RolloutConfig())


async def test_programming_error_surfaces_as_itself():
    def bug(p: str, g: GenParams) -> str:
        raise KeyError("oops")

    with pytest.raises(KeyError):
        await rollout(P, ScriptedBackend(bug), None, "cot", RolloutConfig())


async def test_sample_error_ends_only_that_sample():
    class NoKernels(FakePool):
        async def acquire(self):  # type: ignore[override]
            from sandbox.kernel import KernelStartError

            raise KernelStartError("no kernel for you")

    be = ScriptedBackend(tir_script)
    t = await rollout(P, be, NoKernels(), "tir", RolloutConfig())
    assert t.finish == "error" and "could not start a kernel" in (t.error or "") and "no kernel for you" in t.error


async def test_context_cut_is_its_own_finish():
    be = ScriptedBackend(lambda p, g: "y" * 5000, max_model_len=400)
    t = await rollout(P, be, None, "cot", RolloutConfig(max_tokens=4000))
    assert t.finish == "context" and t.tokens + t.prompt_tokens == 400
    t2 = await rollout(P, ScriptedBackend(lambda p, g: "y" * 5000, max_model_len=4000), None, "cot",
                       RolloutConfig(max_tokens=100))
    assert t2.finish == "length" and t2.tokens == 100


def test_find_code():
    assert find_code("a\n```python\nprint(1)\n```\n") == (2, 25, "print(1)\n")
    assert find_code("```python\nprint(1)\n```") == (0, 22, "print(1)\n")
    assert find_code("```python\nprint(1)\n```\nand then more") is None
    assert find_code("```python\nprint(1)\n") is None
    assert find_code("no code") is None


def test_format_output_statuses_and_cut():
    assert format_output(FakeResult("ok", "", 0.0), 100, 5) == "```output\n[no output; print() the values you need]\n```\n"
    out = format_output(FakeResult("timeout", "partial\n", 5.0, state_lost=True), 100, 5)
    assert "longer than 5 s" in out and "were lost" in out and "partial" in out
    long = format_output(FakeResult("ok", "a" * 500 + "b" * 500, 0.0), 100, 5)
    assert "characters cut" in long and "a" * 50 in long and "a" * 51 not in long and "b" * 50 in long
