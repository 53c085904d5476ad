"""The TIR loop for one sample: generate, run each closed ```python block, feed back, continue.

A TIR sample stops generating at the end of a python block (stop string "```\\n", or a
closing fence at end of sequence), runs the code in the sample's own kernel session (state
persists across its cells), appends the output as an ```output block (head and tail kept
when long; timeouts, crashes, out-of-memory and lost state told in plain words), and
continues from token ids, so earlier text is never re-tokenised. A CoT sample is one
generation. Both end Fast-Math style as soon as a \\boxed{} answer appears after `</think>`.

A sample's state is one `Sample` object; `rollout` is a short loop over `Sample.round()` (one
engine request, then at most one tool call). Budgets: generated tokens per sample across
rounds (tool output tokens do not count, but they do use context: a full context ends the
sample with finish "context", distinct from the token budget's "length"), tool calls per
sample, and an absolute deadline. A `cancel` event ends the sample at once (the engine request
is aborted), e.g. when the problem's vote is settled.

Failures: a `SampleError` (a kernel that cannot start, a model output the format cannot parse)
ends this sample with finish "error" and its message; a `BackendError` (server gone, engine
dead) and any programming error propagate, so the problem stops loudly instead of filling
the vote with failed samples.

Per sample, solve may set a prompt variant (agent/prompt_variants.py) and the thought-switching
penalty (agent/tip.py): the penalty's window is tracked here across tool rounds (model tokens
only) and sent with each request as `GenParams.extra_args`, so a continuation keeps its window.

The gpt-oss family (harmony format, native python tool) runs its own loop,
agent/rollout_harmony.py (prompt variants and TIP do not apply there yet); `Deadline`, the
tool-output notes and session release are shared with it from agent/cells.py. Not covered here:
choosing modes, seeds or sample counts (solve.py), voting (vote.py).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import Any

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
from agent.prompt_variants import PromptVariant
from agent.prompts import family_of, prompt_ids
from agent.tip import TipSettings, TipState, request_args, switch_token_ids
from agent.types import Finish, Mode, Problem, Step, Trace
from sandbox.protocols import KernelPoolLike, SessionLike

CODE_STOP = "```\n"
_OPEN_RE = re.compile(r"```(?:python|py)[ \t]*\n")


class SampleError(Exception):
    """A failure that ends one sample (finish "error") and not the problem."""


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
    return "```output\n" + "\n".join(output_lines(result, limit, timeout)) + "\n```\n"


def answer_ready(text: str, thinks: bool) -> bool:
    """Fast-Math stop: a complete boxed answer after </think> (or anywhere, for non-thinking models)."""
    if "\\boxed" not in text and "\\fbox" not in text:
        return False
    if thinks or "<think>" in text:
        cut = text.rfind("</think>")
        if cut < 0:
            return False
        text = text[cut:]
    return extract_boxed(text) is not None


@dataclass
class Generation:
    """What one engine request produced."""

    ids: list[int]
    how: str  # "stop" | "length" | "abort" | "aborted" | "time" | "answer"
    stop_reason: str | None
    ended_eos: bool
    context_bound: bool  # the request was limited by the context window, not the token budget


@dataclass
class Sample:
    """One sample's inputs and its state while it runs."""

    problem: Problem
    backend: Backend
    pool: KernelPoolLike | None
    mode: Mode
    config: RolloutConfig
    index: int = 0
    seed: int = 0
    on_event: EventHandler | None = None
    deadline: Deadline | None = None
    cancel: asyncio.Event | None = None
    ids: list[int] = field(default_factory=list)  # prompt + everything after it
    prompt_len: int = 0
    steps: list[Step] = field(default_factory=list)
    pending: str = ""  # model text since the last tool output
    tokens: int = 0
    tool_calls: int = 0
    completion_ids: list[int] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    thinks: bool = False
    rounds: int = 0
    session: SessionLike | None = None
    running: asyncio.Future | None = None  # a cell left running after a cancel
    finish: Finish | None = None
    error: str | None = None
    started: float = field(default_factory=time.monotonic)
    entropy: list[float] = field(default_factory=list)  # top-k entropy per generated token (logprobs on)
    tip: TipSettings | None = None  # thought-switching penalty for this sample (None: off)
    variant: PromptVariant | None = None  # prompt variant (None: the family's own)
    tip_state: TipState | None = None

    def begin(self) -> None:
        tok = self.backend.tokenizer
        prompt = prompt_ids(tok, self.problem, self.mode, self.config.prompt_family, variant=self.variant)
        if self.tip is not None:
            self.tip_state = TipState(self.tip.beta, switch_token_ids(tok, self.tip.words))
        self.ids, self.prompt_len = list(prompt), len(prompt)
        self.thinks = "<think>" in self.backend.tokenizer.decode(prompt[-8:])
        emit(self.on_event, Event("start", self.index, self.mode))

    def full_text(self) -> str:
        return "".join(s.text for s in self.steps) + self.pending

    def budget(self) -> tuple[int, bool]:
        """(tokens the next request may generate, whether the context is the tighter bound)."""
        left = self.config.max_tokens - self.tokens
        ctx = self.backend.max_model_len
        room = ctx - len(self.ids) if ctx else left
        return min(left, room), room < left

    def params(self, max_tokens: int) -> GenParams:
        c = self.config
        return GenParams(max_tokens=max_tokens, temperature=c.temperature, top_p=c.top_p, min_p=c.min_p,
                         seed=(self.seed * 1_000_003 + self.rounds) % (2**31),
                         stop=(CODE_STOP,) if self.mode == "tir" else (), logprobs=c.logprobs or None,
                         extra_args=self.tip_args())

    def tip_args(self) -> Any:
        st = self.tip_state
        return request_args(self.tip, sorted(st.ids), st.since) if self.tip is not None and st else None

    async def round(self) -> None:
        """One engine request, then (TIR) at most one tool call; sets `finish` when the sample ends."""
        limit, context_bound = self.budget()
        if limit <= 0:
            self.finish = "context" if context_bound else "length"
            return
        gen = await self.generate(limit, context_bound)
        self.rounds += 1
        self.take(gen)
        if gen.how in ("length", "aborted", "time", "answer"):
            self.finish = "context" if gen.how == "length" and gen.context_bound else gen.how  # type: ignore[assignment]
            return
        block = find_code(self.pending) if self.mode == "tir" else None
        if block is None:
            if gen.stop_reason == CODE_STOP and not gen.ended_eos:
                return  # a plain ``` fence closed, not a python block: keep generating
            self.finish = "answer" if extract_boxed(self.full_text()) else "eos"
            return
        if self.tool_calls >= self.config.max_tool_calls:
            self.finish = "tool_limit"
            return
        if gen.ended_eos:  # the model ended right after the block: the EOS is not context
            self.completion_ids.pop()
            self.mask.pop()
        await self.tool_round(block)

    async def generate(self, limit: int, context_bound: bool) -> Generation:
        """One engine request, streamed; stops early on cancel, the deadline or a ready answer."""
        rid = f"{self.problem.id}#{self.index}#{self.seed}#{self.rounds}"
        new: list[int] = []
        live, stop_reason = self.full_text(), None
        async with EngineRequest(self.backend, self.ids, self.params(limit), rid) as req:
            async for ch in req.stream:
                new.extend(ch.token_ids)
                self.entropy.extend(token_entropy(lp) for lp in ch.logprobs or ())
                if ch.text:
                    live += ch.text
                    emit(self.on_event, Event("text", self.index, ch.text, tokens=self.tokens + len(new)))
                how = self._stop_now(ch, live)
                if how:
                    req.how, stop_reason = how, ch.stop_reason
                    break
            else:
                req.how = "length"
        how = "aborted" if req.how == "abort" else req.how
        ended_eos = bool(new) and new[-1] in self.backend.eos_token_ids
        return Generation(new, how, stop_reason, ended_eos, context_bound)

    def _stop_now(self, ch: Any, live: str) -> str:
        """Why generation stops after this chunk ("" to go on)."""
        how = stream_stop(ch, self.deadline, self.cancel)
        if not how and "}" in ch.text and answer_ready(live, self.thinks):
            how = "answer"
        return how

    def take(self, gen: Generation) -> None:
        """Append a generation's tokens and text (an ending EOS is kept in the record, not the context)."""
        body = gen.ids[:-1] if gen.ended_eos else gen.ids
        self.tokens += len(gen.ids)
        if self.tip_state is not None:
            self.tip_state.feed_all(gen.ids)  # the window carries over tool rounds
        self.ids.extend(body)
        self.completion_ids.extend(gen.ids)
        self.mask.extend([1] * len(gen.ids))
        self.pending += self.backend.tokenizer.decode(body, skip_special_tokens=False)

    async def tool_round(self, block: tuple[int, int, str]) -> None:
        """Split off the code block, run it, append the output block (mask 0)."""
        b_start, b_end, code = block
        if self.pending[:b_start]:
            self.steps.append(Step("text", self.pending[:b_start]))
        code_text = self.pending[b_start:b_end]
        self.steps.append(Step("code", code_text))
        self.pending = ""
        emit(self.on_event, Event("code", self.index, code))
        timeout = self.cell_timeout()
        result = await self.run_cell(code, timeout)
        if result is None:
            self.finish = "aborted"
            return
        self.tool_calls += 1
        out = format_output(result, self.config.output_chars, timeout)
        if not code_text.endswith("\n"):
            out = "\n" + out
        self.steps.append(Step("output", out, status=result.status, seconds=result.seconds))
        emit(self.on_event, Event("output", self.index, out, status=result.status))
        self.append_tool_tokens(self.backend.tokenizer.encode(out, add_special_tokens=False))
        if self.deadline is not None and self.deadline.passed():
            self.finish = "time"

    def append_tool_tokens(self, ids: Any) -> None:
        out_ids = [int(i) for i in ids]
        self.ids.extend(out_ids)
        self.completion_ids.extend(out_ids)
        self.mask.extend([0] * len(out_ids))

    def cell_timeout(self) -> float:
        timeout = self.config.cell_timeout
        if self.deadline is not None:
            timeout = max(0.5, min(timeout, self.deadline.left()))
        return timeout

    async def run_cell(self, code: str, timeout: float) -> Any | None:
        """Run code in the sample's session; None if `cancel` fired first (the cell ends in the background)."""
        return await run_cell(self, await self.acquire(), code, timeout, self.cancel)

    async def acquire(self) -> SessionLike:
        if self.session is None:
            if self.pool is None:
                raise ValueError("a TIR sample needs a kernel pool")
            try:
                self.session = await self.pool.acquire()
            except Exception as e:
                from sandbox.kernel import KernelStartError

                if isinstance(e, KernelStartError):
                    raise SampleError(f"the sandbox could not start a kernel: {e}") from e
                raise
        return self.session

    def release(self) -> None:
        """Hand the session back in the background once any cell still running on it has ended."""
        if self.session is not None and self.pool is not None:
            release_in_background(self.pool, self.session, self.running)
            self.session = None

    def trace(self) -> Trace:
        if self.pending:
            self.steps.append(Step("text", self.pending))
            self.pending = ""
        record = self.config.record_tokens
        return Trace(
            problem_id=self.problem.id, index=self.index, seed=self.seed, mode=self.mode, steps=tuple(self.steps),
            answer=extract_answer(self.full_text(), self.steps, self.problem.modulus),
            finish=self.finish or "error", tokens=self.tokens, tool_calls=self.tool_calls,
            seconds=time.monotonic() - self.started, prompt_tokens=self.prompt_len, error=self.error,
            token_ids=tuple(self.completion_ids) if record else (), mask=tuple(self.mask) if record else (),
            mean_entropy=sum(self.entropy) / len(self.entropy) if self.entropy else None,
            tip=self.tip is not None, prompt=self.variant.name if self.variant else "default",
        )


async def rollout(
    problem: Problem,
    backend: Backend,
    pool: KernelPoolLike | None,
    mode: Mode,
    config: RolloutConfig,
    index: int = 0,
    seed: int = 0,
    on_event: EventHandler | None = None,
    deadline: Deadline | float | None = None,
    cancel: asyncio.Event | None = None,
    tip: TipSettings | None = None,
    variant: PromptVariant | None = None,
) -> Trace:
    """Run one sample to its end and return its Trace. `pool` may be None for CoT samples.

    `deadline` is a `time.monotonic()` time or a shared `Deadline`; `cancel` ends it at once.
    `tip` turns the thought-switching penalty on; `variant` picks a prompt variant.
    """
    if isinstance(deadline, (int, float)):
        deadline = Deadline(float(deadline))
    if mode == "tir" and pool is None:
        raise ValueError("a TIR sample needs a kernel pool")
    if family_of(backend, config.prompt_family) == "gpt-oss":  # harmony: its own round step
        from agent.rollout_harmony import rollout_harmony

        return await rollout_harmony(problem, backend, pool, mode, config, index, seed, on_event, deadline, cancel)
    s = Sample(problem, backend, pool, mode, config, index, seed, on_event, deadline, cancel, tip=tip, variant=variant)
    s.begin()
    try:
        while s.finish is None:
            await s.round()
    except SampleError as e:
        s.finish, s.error = "error", str(e)
    finally:
        s.release()
    trace = s.trace()
    emit(on_event, Event("done", index, trace=trace, tokens=trace.tokens, status=trace.finish))
    return trace
