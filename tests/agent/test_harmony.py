"""gpt-oss's harmony format: rendering and parsing against the openai_harmony package, the
offline vocabulary, and the harmony TIR loop on a scripted backend with real kernels."""

from __future__ import annotations

import asyncio
import math

import pytest
import pytest_asyncio

from agent import harmony
from agent.backends.base import GenParams
from agent.errors import UserError
from agent.rollout import RolloutConfig, rollout
from agent.types import Problem
from tests.fakes import HarmonyScript

P = Problem(id="h1", text="What is 6*7?", answer="42")
CFG = RolloutConfig(prompt_family="gpt-oss", record_tokens=True, cell_timeout=3.0)
TOOL_MSG = "<|start|>python to=assistant<|channel|>analysis<|message|>"


def call(code: str, thought: str = "Let me compute.") -> str:
    return (f"<|channel|>analysis<|message|>{thought}<|end|><|start|>assistant"
            f"<|channel|>analysis to=python <|constrain|>code<|message|>{code}<|call|>")


def final(text: str) -> str:
    return f"<|channel|>analysis<|message|>Done.<|end|><|start|>assistant<|channel|>final<|message|>{text}<|return|>"


def outputs_in(prompt: str) -> list[str]:
    """Contents of the tool messages in a prompt."""
    return [part.split("<|end|>", 1)[0] for part in prompt.split(TOOL_MSG)[1:]]


def test_cot_and_tir_prompts_render_with_the_package():
    from openai_harmony import Conversation, Role

    enc = harmony.encoding()
    cot = harmony.prompt_ids(P, "cot", "low")
    tir = harmony.prompt_ids(P, "tir", "high")
    cot_text, tir_text = enc.decode(cot), enc.decode(tir)
    assert "Reasoning: low" in cot_text and "## python" not in cot_text
    assert "Reasoning: high" in tir_text and "## python" in tir_text and "print()" in tir_text
    assert "What is 6*7?" in tir_text
    conv = Conversation.from_messages(harmony.messages(P, "tir", "high"))
    assert tir == list(enc.render_conversation_for_completion(conv, Role.ASSISTANT))
    assert tir[-2:] == list(enc.encode("<|start|>assistant", allowed_special="all"))  # turn opened
    aimo = harmony.prompt_ids(Problem("a", "Find x.", modulus=1000), "tir", "medium")
    assert "between 0 and 999" in enc.decode(aimo) and "Reasoning: medium" in enc.decode(aimo)


def test_unknown_effort_is_a_user_error():
    with pytest.raises(UserError, match="unknown reasoning effort 'extreme'; choose from low, medium, high"):
        harmony.prompt_ids(P, "tir", "extreme")


def test_parse_round_and_tool_reply():
    enc = harmony.encoding()
    ids = enc.encode(call("print(6*7)"), allowed_special="all")
    msgs = harmony.parse_round(ids)
    assert [(m.channel, m.recipient, m.text) for m in msgs] == [
        ("analysis", None, "Let me compute."), ("analysis", "python", "print(6*7)")]
    reply = harmony.tool_reply_ids("42")
    assert enc.decode(reply) == TOOL_MSG + "42<|end|><|start|>assistant"
    assert set(harmony.stop_token_ids()) == set(enc.stop_tokens_for_assistant_actions())


def test_missing_vocabulary_is_one_line(monkeypatch, tmp_path):
    monkeypatch.delenv("TIKTOKEN_ENCODINGS_BASE", raising=False)
    monkeypatch.setenv("TIRMATH_CACHE", str(tmp_path))
    monkeypatch.setattr(harmony, "VOCAB_PACKAGE", "no_such_package_here")
    with pytest.raises(UserError) as e:
        harmony.ensure_vocabulary()
    msg = str(e.value)
    assert "\n" not in msg and "pip install bpe-openai" in msg and "TIKTOKEN_ENCODINGS_BASE" in msg


def test_vocabulary_is_unpacked_into_the_cache_and_verified(monkeypatch, tmp_path):
    monkeypatch.delenv("TIKTOKEN_ENCODINGS_BASE", raising=False)
    monkeypatch.setenv("TIRMATH_CACHE", str(tmp_path))
    folder = harmony.ensure_vocabulary()
    assert folder == tmp_path / "tiktoken"
    assert harmony._sha256(folder / harmony.VOCAB_FILE) == harmony.VOCAB_SHA256
    (folder / harmony.VOCAB_FILE).write_bytes(b"corrupt")  # a damaged copy is replaced
    monkeypatch.delenv("TIKTOKEN_ENCODINGS_BASE")
    harmony.ensure_vocabulary()
    assert harmony._sha256(folder / harmony.VOCAB_FILE) == harmony.VOCAB_SHA256


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def kernels():
    from sandbox.pool import KernelPool, SandboxConfig

    pool = KernelPool(2, SandboxConfig(isolation="auto", start_timeout=300.0))
    await pool.start()
    yield pool
    await pool.close()


def two_calls(prompt: str, params: GenParams) -> str:
    seen = outputs_in(prompt)
    if not seen:
        return call("x = 6*7\nprint(x)")
    if len(seen) == 1:
        return call("print(x + 0)", "Check that the state is kept.")
    return final(f"The answer is \\boxed{{{seen[-1].strip()}}}.") + "<|start|>assistant never reached"


async def test_loop_runs_real_kernels_and_masks_tool_messages(kernels):
    be = HarmonyScript(two_calls)
    t = await rollout(P, be, kernels, "tir", CFG, index=2, seed=5)
    assert (t.finish, t.tool_calls, t.error) == ("answer", 2, None)
    assert t.answer is not None and t.answer.value == 42 and t.answer.source == "boxed"
    # the kernel's real output was in the next prompt, and x survived between calls
    assert outputs_in(be.requests[1][0]) == ["42"] and outputs_in(be.requests[2][0]) == ["42", "42"]
    assert all(set(p.stop_token_ids) == set(harmony.stop_token_ids()) for _, p in be.requests)
    assert [s.kind for s in t.steps] == ["text", "code", "output", "text", "code", "output", "text"]
    assert t.steps[1].text.startswith("x = 6*7") and t.steps[1].text.endswith("<|call|>")
    # tokens and mask: the completion decodes to the steps; mask 0 on exactly the tool messages
    assert harmony.decode(t.token_ids) == t.completion
    masked = [i for i, m in zip(t.token_ids, t.mask, strict=True) if m == 0]
    tool_ids = harmony.tool_reply_ids("42") * 2
    assert masked == tool_ids
    assert t.tokens == sum(t.mask) and "never reached" not in t.completion


def crash_then_timeout(prompt: str, params: GenParams) -> str:
    seen = outputs_in(prompt)
    if not seen:
        return call("import time\ntime.sleep(30)")
    if len(seen) == 1:
        return call("import os\nos._exit(1)")
    if len(seen) == 2:
        return call("y = 1")
    return final("I could not finish, \\boxed{0}.")


async def test_timeout_crash_and_silent_code_are_told(kernels):
    be = HarmonyScript(crash_then_timeout)
    t = await rollout(P, be, kernels, "tir", RolloutConfig(prompt_family="gpt-oss", cell_timeout=1.0))
    told = outputs_in(be.requests[3][0])
    assert "longer than 1 s" in told[0]
    assert "crashed" in told[1] and "lost" in told[1]
    assert "use print()" in told[2]
    assert t.tool_statuses[:2] == ("timeout", "crashed") and t.finish == "answer"


def cot_script(prompt: str, params: GenParams) -> str:
    assert "## python" not in prompt
    return final("So \\boxed{42}.")


async def test_cot_sample_declares_no_tool_and_keeps_entropy():
    be = HarmonyScript(cot_script)
    cfg = RolloutConfig(prompt_family="gpt-oss", logprobs=3, min_p=0.02, reasoning_effort="low")
    t = await rollout(P, be, None, "cot", cfg)
    assert t.finish == "answer" and t.answer is not None and t.answer.value == 42
    assert be.requests[0][1].logprobs == 3 and be.requests[0][1].min_p == 0.02
    p = [0.9, 0.05, 0.05]
    assert t.mean_entropy == pytest.approx(-sum(x * math.log(x) for x in p))
    assert "Reasoning: low" in be.requests[0][0]


async def test_early_stop_on_boxed_final_channel():
    be = HarmonyScript(lambda p, g: final("It is \\boxed{42}, and now a long tail " + "blah " * 200), delay=0.001)
    t = await rollout(P, be, None, "cot", CFG)
    assert t.finish == "answer" and t.answer is not None and t.answer.value == 42
    assert be.aborted and t.tokens < 100


async def test_answer_falls_back_to_the_analysis_channel():
    be = HarmonyScript(lambda p, g: "<|channel|>analysis<|message|>so \\boxed{7}<|end|>")
    t = await rollout(P, be, None, "cot", RolloutConfig(prompt_family="gpt-oss", max_tokens=40))
    assert t.answer is not None and t.answer.value == 7


def garbage(prompt: str, params: GenParams) -> str:
    if "Broken" in prompt:
        return "<|channel|>analysis to=weather<|message|>{}<|call|>"
    return final("\\boxed{42}")


async def test_bad_harmony_ends_that_sample_with_error_others_go_on():
    be = HarmonyScript(garbage)
    good, bad = await asyncio.gather(
        rollout(P, be, None, "cot", CFG), rollout(Problem("b", "Broken one"), be, None, "cot", CFG))
    assert good.finish == "answer" and good.answer is not None and good.answer.value == 42
    assert bad.finish == "error" and bad.error is not None and "unknown tool 'weather'" in bad.error


async def test_tool_limit_and_length():
    be = HarmonyScript(lambda p, g: call("print(1)"))
    t = await rollout(P, be, None, "cot", CFG)
    assert t.finish == "tool_limit" and t.tool_calls == 0
    t = await rollout(P, HarmonyScript(lambda p, g: "<|channel|>analysis<|message|>" + "hmm " * 50), None,
                      "cot", RolloutConfig(prompt_family="gpt-oss", max_tokens=20))
    assert (t.finish, t.tokens) == ("length", 20)


def test_entropy_weight_prefers_confident_samples_and_survives_storage():
    from agent.types import Answer, Trace
    from agent.vote import make_weight, needs_entropy, vote

    def t(i: int, value: int, h: float | None) -> Trace:
        return Trace("p", i, i, "cot", (), Answer(str(value), value, "boxed"), "answer", 10, 0, mean_entropy=h)

    traces = [t(0, 7, 2.0), t(1, 7, 2.0), t(2, 42, 0.5)]
    assert vote(traces).answer == 7
    assert vote(traces, make_weight("entropy")).answer == 42  # 1/0.5 = 2 > 2 x 1/2
    stored = [Trace.from_dict(x.to_dict()) for x in traces]  # what replay reads back from a run store
    assert [x.mean_entropy for x in stored] == [2.0, 2.0, 0.5]
    assert vote(stored, make_weight("entropy*aimo2")).answer == 42
    assert needs_entropy("tir_clean*entropy:0.1") and not needs_entropy("uniform")
    with pytest.raises(UserError, match="no recorded entropy"):
        vote([t(0, 7, None)], make_weight("entropy"))
    with pytest.raises(UserError, match="floor must be > 0"):
        make_weight("entropy:0")


async def test_solve_with_entropy_weight_asks_for_logprobs():
    from agent.config import SolveConfig
    from agent.solve import solve

    said = []

    def reply(prompt: str, params: GenParams) -> tuple[str, float]:
        said.append(params)
        if len(said) == 1:
            return final("\\boxed{42}"), math.log(0.99)  # one confident sample
        return final("\\boxed{7}"), math.log(0.4)  # two hesitant ones

    cfg = SolveConfig(samples=3, tir_ratio=0.0, weight="entropy", concurrency=1,
                      rollout=RolloutConfig(prompt_family="gpt-oss"))
    result = await solve(P, HarmonyScript(reply), None, cfg)
    assert all(p.logprobs for p in said)
    assert sorted(t.answer.value for t in result.traces if t.answer) == [7, 7, 42]
    assert result.answer == 42


def test_tool_text_notes_empty_and_cut_output():
    from agent.rollout_harmony import CUT_NOTE, EMPTY_NOTE, tool_text
    from tests.fakes import FakeResult

    assert tool_text(FakeResult("ok", "", 0.1), 100, 5.0) == EMPTY_NOTE
    long = tool_text(FakeResult("ok", "x" * 500, 0.1), 100, 5.0)
    assert long.endswith(CUT_NOTE) and "characters cut" in long and len(long) < 300
    assert tool_text(FakeResult("timeout", "partial", 5.0), 100, 5.0) == \
        "partial\n[the cell ran longer than 5 s and was stopped]"
