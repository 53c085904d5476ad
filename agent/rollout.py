"""The TIR loop for one sample: generate, run each closed ```python block, feed back, continue.

A TIR sample stops generating at the end of a python block (stop string "```\\n", or a
closing fence at end of sequence), runs the code in the sample's own kernel session (state
persists across its cells), appends the output as an ```output block (head and tail kept
when long; timeouts, crashes, out-of-memory and lost state told in plain words), and
continues from token ids, so earlier text is never re-tokenised. A CoT sample is one
generation. Both end Fast-Math style as soon as a \\boxed{} answer appears after `</think>`.

Budgets: generated tokens per sample across rounds (tool output tokens do not count, but
they do use context), tool calls per sample, and an absolute deadline. A `cancel` event ends
the sample at once (the engine request is aborted), e.g. when the problem's vote is settled.

Not covered here: choosing modes, seeds or sample counts (solve.py), voting (vote.py).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import Any

from agent.answers import extract_answer, extract_boxed
from agent.backends.base import Backend, GenParams
from agent.backends.errors import BackendUnavailable
from agent.events import Event, EventHandler, emit
from agent.prompts import prompt_ids
from agent.types import Finish, Mode, Problem, Step, Trace

CODE_STOP = "```\n"
_RELEASING: set[asyncio.Future] = set()  # sessions being handed back in the background
_OPEN_RE = re.compile(r"```(?:python|py)[ \t]*\n")


@dataclass
class Deadline:
    """An absolute `time.monotonic()` deadline, shared by a problem's samples; solve may extend it."""

    at: float

    def passed(self) -> bool:
        return time.monotonic() > self.at

    def left(self) -> float:
        return self.at - time.monotonic()


@dataclass(frozen=True)
class RolloutConfig:
    """Per-sample limits and sampling settings."""

    max_tokens: int = 8192  # generated tokens per sample, across all rounds
    max_tool_calls: int = 8  # code cells run per sample; later blocks are not run
    cell_timeout: float = 10.0  # seconds per code cell
    temperature: float = 0.6
    top_p: float = 0.95
    output_chars: int = 1200  # head + tail of a tool output kept when fed back
    record_tokens: bool = False  # fill Trace.token_ids / Trace.mask (mask 0 on tool output)
    prompt_family: str = "auto"  # see agent.prompts


def find_code(segment: str) -> tuple[int, int, str] | None:
    """The last ```python block in `segment` if it is closed at the end of `segment`.

    Returns (start, end, code): the block spans segment[start:end]. A block whose closing
    fence is followed by more text is not returned: the model moved on without running it.
    """
    opens = list(_OPEN_RE.finditer(segment))
    if not opens:
        return None
    m = opens[-1]
    close = segment.find("```", m.end())
    if close < 0:
        return None
    end = close + 3
    if segment[end:].strip():
        return None
    return m.start(), len(segment), segment[m.end() : close]


def format_output(result: Any, limit: int, timeout: float) -> str:
    """Render a sandbox ExecResult as the ```output block the model reads next."""
    body = (result.output or "").rstrip("\n")
    if len(body) > limit:
        head, tail = body[: limit // 2], body[-limit // 2 :]
        body = f"{head}\n... [{len(body) - len(head) - len(tail)} characters cut] ...\n{tail}"
    status = result.status
    notes = {
        "timeout": f"[the cell ran longer than {timeout:g} s and was stopped]",
        "oom": "[the cell ran out of memory and was stopped]",
        "crashed": "[the Python kernel crashed]",
        "restarted": "[the Python kernel was restarted]",
    }
    lines = [body] if body else []
    if status in notes:
        lines.append(notes[status])
    if getattr(result, "state_lost", False) or status in ("crashed", "restarted"):
        lines.append("[all variables and imports from earlier cells were lost]")
    if not lines:
        lines.append("[no output; print() the values you need]")
    return "```output\n" + "\n".join(lines) + "\n```\n"


@dataclass
class _State:
    """Mutable bookkeeping of one rollout (private)."""

    ids: list[int]
    steps: list[Step] = field(default_factory=list)
    pending: str = ""  # model text since the last tool output
    tokens: int = 0
    tool_calls: int = 0
    completion_ids: list[int] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    thinks: bool = False
    running: asyncio.Future | None = None  # a cell left running after a cancel

    def full_text(self) -> str:
        return "".join(s.text for s in self.steps) + self.pending


def _answer_ready(text: str, thinks: bool) -> bool:
    """Fast-Math stop: a complete boxed answer after </think> (or anywhere, for non-thinking models)."""
    if "\\boxed" not in text and "\\fbox" not in text:
        return False
    if thinks or "<think>" in text:
        cut = text.rfind("</think>")
        if cut < 0:
            return False
        text = text[cut:]
    return extract_boxed(text) is not None


async def _generate(
    backend: Backend,
    st: _State,
    params: GenParams,
    rid: str,
    on_event: EventHandler | None,
    index: int,
    deadline: Deadline | None,
    cancel: asyncio.Event | None,
) -> tuple[list[int], str, str | None]:
    """One engine request. Returns (new ids, finish, stop_reason)."""
    new_ids: list[int] = []
    live = st.full_text()
    finish, stop_reason = "length", None
    stream = backend.stream(st.ids, params, rid)
    try:
        async for ch in stream:
            new_ids.extend(ch.token_ids)
            if ch.text:
                live += ch.text
                emit(on_event, Event("text", index, ch.text, tokens=st.tokens + len(new_ids)))
            if ch.finish_reason:
                finish, stop_reason = ch.finish_reason, ch.stop_reason
                break
            if cancel is not None and cancel.is_set():
                finish = "aborted"
                break
            if deadline is not None and deadline.passed():
                finish = "time"
                break
            if "}" in ch.text and _answer_ready(live, st.thinks):
                finish = "answer"
                break
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
        if finish in ("aborted", "time", "answer"):
            await backend.abort(rid)
    return new_ids, finish, stop_reason


async def _run_cell(
    st: _State, session: Any, code: str, timeout: float, cancel: asyncio.Event | None
) -> Any | None:
    """Run code in the session; None if `cancel` fired first (the cell then ends in the background)."""
    run = asyncio.ensure_future(session.run(code, timeout=timeout))
    if cancel is None:
        return await run
    waiter = asyncio.ensure_future(cancel.wait())
    done, _ = await asyncio.wait({run, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if run in done:
        return run.result()
    st.running = run
    return None


def _eos_ids(backend: Backend) -> set[int]:
    ids = getattr(backend, "eos_token_ids", None)
    if ids:
        return set(ids)
    eos = getattr(backend.tokenizer, "eos_token_id", None)
    return {eos} if eos is not None else set()


async def rollout(
    problem: Problem,
    backend: Backend,
    pool: Any,
    mode: Mode,
    config: RolloutConfig,
    index: int = 0,
    seed: int = 0,
    on_event: EventHandler | None = None,
    deadline: Deadline | float | None = None,
    cancel: asyncio.Event | None = None,
) -> Trace:
    """Run one sample to its end and return its Trace. `pool` may be None for CoT samples.

    `deadline` is a `time.monotonic()` time or a shared `Deadline`; `cancel` ends it at once.
    """
    if isinstance(deadline, (int, float)):
        deadline = Deadline(float(deadline))
    if mode == "tir" and pool is None:
        raise ValueError("a TIR sample needs a kernel pool")
    tok = backend.tokenizer
    start = time.monotonic()
    prompt = prompt_ids(tok, problem, mode, config.prompt_family)
    st = _State(ids=list(prompt))
    st.thinks = "<think>" in tok.decode(prompt[-8:])
    eos = _eos_ids(backend)
    ctx_limit = getattr(backend, "max_model_len", None)
    session = None
    finish: Finish = "length"
    error = None
    emit(on_event, Event("start", index, mode))
    try:
        for rnd in range(10_000):
            remaining = config.max_tokens - st.tokens
            if ctx_limit:
                remaining = min(remaining, ctx_limit - len(st.ids))
            if remaining <= 0:
                finish = "length"
                break
            params = GenParams(
                max_tokens=remaining,
                temperature=config.temperature,
                top_p=config.top_p,
                seed=(seed * 1_000_003 + rnd) % (2**31),
                stop=(CODE_STOP,) if mode == "tir" else (),
            )
            rid = f"{problem.id}#{index}#{seed}#{rnd}"
            new_ids, how, stop_reason = await _generate(
                backend, st, params, rid, on_event, index, deadline, cancel
            )
            ended_eos = bool(new_ids) and new_ids[-1] in eos
            body_ids = new_ids[:-1] if ended_eos else new_ids
            st.tokens += len(new_ids)
            st.ids.extend(body_ids)
            st.completion_ids.extend(new_ids)
            st.mask.extend([1] * len(new_ids))
            st.pending += tok.decode(body_ids, skip_special_tokens=False)
            if how in ("length", "aborted", "time", "answer"):
                finish = how  # type: ignore[assignment]
                break
            block = find_code(st.pending) if mode == "tir" else None
            if block is None:
                if stop_reason == CODE_STOP and not ended_eos:
                    continue  # a plain ``` fence closed, not a python block: keep generating
                finish = "answer" if extract_boxed(st.full_text()) else "eos"
                break
            if st.tool_calls >= config.max_tool_calls:
                finish = "tool_limit"
                break
            if ended_eos:  # the model ended right after the block: the EOS is not context
                st.completion_ids.pop()
                st.mask.pop()
            if session is None:
                session = await pool.acquire()
            cell = await _tool_round(st, block, session, tok, config, on_event, index, deadline, cancel)
            if cell is None:
                finish = "aborted"
                break
            if deadline is not None and deadline.passed():
                finish = "time"
                break
    except BackendUnavailable:  # nothing can run any more: the run stops (and resumes later)
        raise
    except Exception as e:  # a failed request ends this sample, not the problem
        finish, error = "error", f"{type(e).__name__}: {e}"
    finally:
        if session is not None:
            task = asyncio.ensure_future(_release_later(pool, session, st.running))
            _RELEASING.add(task)  # keep a reference until it is done (asyncio holds only weak ones)
            task.add_done_callback(_RELEASING.discard)
    if st.pending:
        st.steps.append(Step("text", st.pending))
        st.pending = ""
    text = st.full_text()
    trace = Trace(
        problem_id=problem.id,
        index=index,
        seed=seed,
        mode=mode,
        steps=tuple(st.steps),
        answer=extract_answer(text, st.steps, problem.modulus),
        finish=finish,
        tokens=st.tokens,
        tool_calls=st.tool_calls,
        seconds=time.monotonic() - start,
        prompt_tokens=len(prompt),
        error=error,
        token_ids=tuple(st.completion_ids) if config.record_tokens else (),
        mask=tuple(st.mask) if config.record_tokens else (),
    )
    emit(on_event, Event("done", index, trace=trace, tokens=trace.tokens, status=finish))
    return trace


async def _tool_round(
    st: _State,
    block: tuple[int, int, str],
    session: Any,
    tokenizer: Any,
    config: RolloutConfig,
    on_event: EventHandler | None,
    index: int,
    deadline: Deadline | None,
    cancel: asyncio.Event | None,
) -> Any | None:
    """Split off the code block, run it, append the output block (mask 0). None if cancelled."""
    b_start, b_end, code = block
    if st.pending[:b_start]:
        st.steps.append(Step("text", st.pending[:b_start]))
    code_text = st.pending[b_start:b_end]
    st.steps.append(Step("code", code_text))
    st.pending = ""
    emit(on_event, Event("code", index, code))
    timeout = config.cell_timeout
    if deadline is not None:
        timeout = max(0.5, min(timeout, deadline.left()))
    result = await _run_cell(st, session, code, timeout, cancel)
    if result is None:
        return None
    st.tool_calls += 1
    out = format_output(result, config.output_chars, timeout)
    if not code_text.endswith("\n"):
        out = "\n" + out
    st.steps.append(Step("output", out, status=result.status, seconds=result.seconds))
    emit(on_event, Event("output", index, out, status=result.status))
    out_ids = [int(i) for i in tokenizer.encode(out, add_special_tokens=False)]
    st.ids.extend(out_ids)
    st.completion_ids.extend(out_ids)
    st.mask.extend([0] * len(out_ids))
    return result


async def _release_later(pool: Any, session: Any, running: asyncio.Future | None) -> None:
    """Give the session back once any cell still running on it (after a cancel) has ended."""
    if running is not None:
        try:
            await running
        except Exception:
            pass
    await pool.release(session)
