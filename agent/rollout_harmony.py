"""The TIR loop for one gpt-oss sample in the harmony format, on token ids end to end.

A round generates until `<|call|>` or `<|return|>` (`GenParams.stop_token_ids`), reading the
stream with harmony's `StreamableParser`. A call to `python` runs its code in the sample's own
kernel session (state persists across calls); the output goes back as the tool's message on
the same channel (head and tail kept when long, timeouts/crashes told in plain words, an
explicit "use print()" note when the output was empty or cut), followed by the next assistant
turn, all rendered by `openai_harmony`; those tokens carry mask 0. A CoT sample is the same
format with no tool declared (a call there ends the sample as `tool_limit`).

The answer is the last `\\boxed{}` in the final channel, else in the analysis channel, else
the last printed number. The sample stops Fast-Math style as soon as the final channel holds
a complete `\\boxed{}`. With `RolloutConfig.logprobs` = k the mean top-k entropy of the
generated tokens is kept as `Trace.mean_entropy` (the `entropy` vote weight).

Steps hold the exact harmony text: "text" = the model's messages, "code" = the call's code
and its `<|call|>`, "output" = the rendered tool message and the reopened assistant turn.
Not covered: budgets across samples, voting, the fenced ```python loop (agent/rollout.py).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from agent import harmony
from agent.answers import extract_answer, extract_boxed
from agent.backends.base import Backend, GenParams
from agent.cells import (
    Deadline,
    EngineRequest,
    output_lines,
    release_in_background,
    run_cell,
    stream_stop,
    token_entropy,
)
from agent.config import RolloutConfig
from agent.events import Event, EventHandler, emit
from agent.types import Answer, Finish, Mode, Problem, Step, Trace

EMPTY_NOTE = "[the code printed nothing: use print() to see values]"
CUT_NOTE = "[the output was cut: print() only what you need]"


@dataclass
class _State:
    """Mutable bookkeeping of one harmony rollout (private)."""

    ids: list[int]
    steps: list[Step] = field(default_factory=list)
    tokens: int = 0
    tool_calls: int = 0
    completion_ids: list[int] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    final: list[str] = field(default_factory=list)
    analysis: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    entropy_sum: float = 0.0
    entropy_n: int = 0
    running: asyncio.Future | None = None  # a cell left running after a cancel


@dataclass(frozen=True)
class _Round:
    """What one generation round produced."""

    ids: list[int]
    finish: str  # "stop" | "length" | "aborted" | "time" | "answer" | "abort"
    messages: tuple[harmony.Parsed, ...]


def tool_text(result: Any, limit: int, timeout: float) -> str:
    """The tool message text for a sandbox result: the fenced loop's caps and notes, plus an
    explicit "use print()" note when the code printed nothing or its output was cut."""
    lines = [ln for ln in output_lines(result, limit, timeout) if not ln.startswith("[no output;")]
    if not (result.output or "").strip():
        lines.append(EMPTY_NOTE)
    elif len((result.output or "").rstrip("\n")) > limit:
        lines.append(CUT_NOTE)
    return "\n".join(lines)


def _messages_of(parser: Any) -> tuple[harmony.Parsed, ...]:
    """Completed messages plus the one in progress (cut by length, time or an early stop)."""
    out = [
        harmony.Parsed(m.channel, m.recipient, "".join(getattr(c, "text", "") for c in m.content))
        for m in parser.messages
    ]
    current = parser.current_content
    if current:
        out.append(harmony.Parsed(parser.current_channel, parser.current_recipient, current))
    return tuple(out)


async def _generate(
    backend: Backend, st: _State, params: GenParams, rid: str, on_event: EventHandler | None,
    index: int, deadline: Deadline | None, cancel: asyncio.Event | None,
) -> _Round:
    """One engine request, parsed as it streams."""
    from openai_harmony import Role, StreamableParser

    enc = harmony.encoding()
    parser = StreamableParser(enc, Role.ASSISTANT)
    new_ids: list[int] = []
    async with EngineRequest(backend, st.ids, params, rid) as req:
        async for ch in req.stream:
            new_ids.extend(ch.token_ids)
            for lp in ch.logprobs or ():
                st.entropy_sum += token_entropy(lp)
                st.entropy_n += 1
            try:
                for t in ch.token_ids:
                    parser.process(int(t))
            except Exception as e:  # HarmonyError: tokens that are not harmony
                raise harmony.HarmonyParseError(f"harmony parse failed after {len(new_ids)} tokens: {e}") from e
            if ch.token_ids:
                emit(on_event, Event("text", index, enc.decode(list(ch.token_ids)), tokens=st.tokens + len(new_ids)))
            how = stream_stop(ch, deadline, cancel)
            if not how and parser.current_channel == "final" and extract_boxed(parser.current_content or ""):
                how = "answer"
            if how:
                req.how = how
                break
        else:
            req.how = "length"
    return _Round(new_ids, req.how, _messages_of(parser))


def _record(st: _State, rnd: _Round) -> None:
    """Keep the round's ids (mask 1) and the text of its messages by channel."""
    st.tokens += len(rnd.ids)
    st.ids.extend(rnd.ids)
    st.completion_ids.extend(rnd.ids)
    st.mask.extend([1] * len(rnd.ids))
    for m in rnd.messages:
        if m.recipient is None:
            (st.final if m.channel == "final" else st.analysis).append(m.text)


def _split_call(st: _State, rnd: _Round, code: str) -> None:
    """Steps for a round ending in a call: the text before the code, then code + `<|call|>`."""
    text = harmony.decode(rnd.ids)
    tail = code + harmony.decode(rnd.ids[-1:])
    cut = len(text) - len(tail) if text.endswith(tail) else 0
    if text[:cut]:
        st.steps.append(Step("text", text[:cut]))
    st.steps.append(Step("code", text[cut:]))


async def _tool_round(
    st: _State, code: str, channel: str | None, session: Any, config: RolloutConfig,
    on_event: EventHandler | None, index: int, deadline: Deadline | None, cancel: asyncio.Event | None,
) -> Any | None:
    """Run the call's code, append the tool message (mask 0). None if cancelled."""
    emit(on_event, Event("code", index, code))
    timeout = config.cell_timeout
    if deadline is not None:
        timeout = max(0.5, min(timeout, deadline.left()))
    result = await run_cell(st, session, code, timeout, cancel)
    if result is None:
        return None
    st.tool_calls += 1
    text = tool_text(result, config.output_chars, timeout)
    st.outputs.append(text)
    ids = harmony.tool_reply_ids(text, channel or "analysis")
    st.steps.append(Step("output", harmony.decode(ids), status=result.status, seconds=result.seconds))
    emit(on_event, Event("output", index, text, status=result.status))
    st.ids.extend(ids)
    st.completion_ids.extend(ids)
    st.mask.extend([0] * len(ids))
    return result


def answer_of(st: _State, modulus: int | None) -> Answer | None:
    """Boxed in the final channel, else boxed in the analysis channel, else the last printed number."""
    final = "".join(st.final)
    if final:
        found = extract_answer(final, (Step("text", final),), modulus)
        if found is not None:
            return found
    steps = [Step("text", "\n".join(st.analysis))] + [Step("output", o) for o in st.outputs]
    return extract_answer("", steps, modulus)


def _budget(config: RolloutConfig, st: _State, backend: Backend) -> tuple[int, bool]:
    """(tokens the next request may generate, whether the context window is the tighter bound)."""
    left = config.max_tokens - st.tokens
    ctx = getattr(backend, "max_model_len", None)
    room = ctx - len(st.ids) if ctx else left
    return min(left, room), room < left


async def _acquire(pool: Any) -> Any:
    """The sample's kernel session; a kernel that cannot start ends the sample (not the problem)."""
    from sandbox.kernel import KernelStartError

    try:
        return await pool.acquire()
    except KernelStartError as e:
        raise harmony.HarmonyParseError(f"the sandbox could not start a kernel: {e}") from e


def _params(config: RolloutConfig, limit: int, seed: int, n: int) -> GenParams:
    return GenParams(max_tokens=limit, temperature=config.temperature, top_p=config.top_p,
                     seed=(seed * 1_000_003 + n) % (2**31), stop_token_ids=harmony.stop_token_ids(),
                     min_p=config.min_p, logprobs=config.logprobs or None)


def _trace(problem: Problem, mode: Mode, index: int, seed: int, st: _State, finish: Finish, error: str | None,
           start: float, prompt_len: int, config: RolloutConfig) -> Trace:
    return Trace(
        problem_id=problem.id, index=index, seed=seed, mode=mode, steps=tuple(st.steps),
        answer=answer_of(st, problem.modulus), finish=finish, tokens=st.tokens,
        tool_calls=st.tool_calls, seconds=time.monotonic() - start, prompt_tokens=prompt_len, error=error,
        token_ids=tuple(st.completion_ids) if config.record_tokens else (),
        mask=tuple(st.mask) if config.record_tokens else (),
        mean_entropy=st.entropy_sum / st.entropy_n if st.entropy_n else None,
    )


async def rollout_harmony(
    problem: Problem, backend: Backend, pool: Any, mode: Mode, config: RolloutConfig, index: int = 0,
    seed: int = 0, on_event: EventHandler | None = None, deadline: Deadline | None = None,
    cancel: asyncio.Event | None = None,
) -> Trace:
    """Run one harmony sample to its end and return its Trace (see the module docstring).

    A harmony parse failure or a kernel that cannot start ends this sample with finish "error";
    backend failures (BackendError) propagate, as in the fenced loop."""
    start = time.monotonic()
    prompt = harmony.prompt_ids(problem, mode, config.reasoning_effort)
    st = _State(ids=list(prompt))
    session, error = None, None
    finish: Finish | None = None
    emit(on_event, Event("start", index, mode))
    try:
        for n in range(10_000):
            limit, context_bound = _budget(config, st, backend)
            if limit <= 0:
                finish = "context" if context_bound else "length"
                break
            rnd = await _generate(backend, st, _params(config, limit, seed, n), f"{problem.id}#{index}#{seed}#{n}", on_event, index,
                                  deadline, cancel)
            _record(st, rnd)
            call = rnd.messages[-1] if rnd.messages and rnd.messages[-1].recipient else None
            if rnd.finish != "stop" or call is None:
                if rnd.ids:
                    st.steps.append(Step("text", harmony.decode(rnd.ids)))
                finish = "context" if rnd.finish == "length" and context_bound else _end_of(rnd.finish, st)
                break
            _split_call(st, rnd, call.text)
            if not str(call.recipient).startswith("python"):
                raise harmony.HarmonyParseError(f"the model called an unknown tool {call.recipient!r}")
            if mode != "tir" or st.tool_calls >= config.max_tool_calls:
                finish = "tool_limit"
                break
            session = session or await _acquire(pool)
            if await _tool_round(st, call.text, call.channel, session, config, on_event, index, deadline,
                                 cancel) is None:
                finish = "aborted"
                break
            if deadline is not None and deadline.passed():
                finish = "time"
                break
    except harmony.HarmonyParseError as e:
        finish, error = "error", str(e)
    finally:
        if session is not None:
            release_in_background(pool, session, st.running)
    trace = _trace(problem, mode, index, seed, st, finish or "error", error, start, len(prompt), config)
    emit(on_event, Event("done", index, trace=trace, tokens=trace.tokens, status=trace.finish))
    return trace


def _end_of(how: str, st: _State) -> Finish:
    """The Finish of a round that did not end in a call."""
    if how in ("length", "aborted", "time", "answer"):
        return how  # type: ignore[return-value]
    if how == "abort":
        return "aborted"
    return "answer" if extract_boxed("".join(st.final) or "\n".join(st.analysis)) else "eos"
