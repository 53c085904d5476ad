"""One backend over several OpenAI-compatible servers that keeps going when some of them die.

`FailoverBackend` implements the `Backend` interface over several `ServerBackend`s:
- Each request goes to the live server with the fewest outstanding requests; the samples of
  one problem stay on the server that took the problem's first request while it is no busier
  than the least loaded one plus `AFFINITY_SLACK` (so their shared prompt prefix stays cached).
- A server that stops answering (`ServerDown`: connection refused or reset, a stalled stream,
  HTTP 5xx) is taken out of rotation with one log line. Each of its in-flight requests goes on
  at once on another server from its last safe point: the prompt plus every token already
  streamed, with the remaining token budget and the same seed (a continuation, so the sample
  is kept, not restarted). A down server is tried again after `retry_after` seconds (doubling
  up to 8x while it stays down) with a GET /v1/models, and rejoins with one log line.
- When no server is left (after one last check of them all) a `BackendError` names
  every server and why it is down: the run stops with exit code 1 and resumes on a rerun.
`events` records each server death and when its requests were running elsewhere again
(`evals.scale_bench` reports that time).

Not covered: HTTP errors that are the request's own fault (4xx: the sample ends in `error`),
starting servers, and stop strings split across a failover seam (the continuation does not
see the first half).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from agent.backends.base import BackendError, Chunk, GenParams, eos_ids_of
from agent.backends.errors import ServerDown

RETRY_AFTER = 30.0
AFFINITY_SLACK = 2
log = logging.getLogger("tirmath.failover")


@dataclass
class _Member:
    backend: Any  # a ServerBackend (anything with .url, .stream, .abort, .close, .healthy)
    outstanding: int = 0
    down: str = ""  # why it is out of rotation ("" when live)
    failures: int = 0
    retry_at: float = 0.0

    @property
    def url(self) -> str:
        return str(self.backend.url)


@dataclass
class FailoverEvent:
    """A server death: when it was seen, and when each of its requests streamed again elsewhere."""

    url: str
    reason: str
    at: float  # time.monotonic()
    resumed: list[float] = field(default_factory=list)


def affinity_key(request_id: str) -> str:
    """The problem part of a rollout request id `problem#index#seed#round`."""
    parts = request_id.rsplit("#", 3)
    return parts[0] if len(parts) == 4 else request_id


class FailoverBackend:
    """Spreads requests over servers by load and fails over; build with `await FailoverBackend.open(...)`."""

    name = "failover"

    def __init__(self, backends: Sequence[Any], retry_after: float = RETRY_AFTER) -> None:
        if not backends:
            raise ValueError("at least one server backend is needed")
        self.members = [_Member(b) for b in backends]
        self.tokenizer = backends[0].tokenizer
        self.eos_token_ids: tuple[int, ...] = tuple(getattr(backends[0], "eos_token_ids", ())) or eos_ids_of(
            self.tokenizer)
        lens = [b.max_model_len for b in backends if getattr(b, "max_model_len", None)]
        self.max_model_len = min(lens) if lens else None
        self.width = len(backends)  # how many servers share the work (the runner sizes its slots by it)
        self.retry_after = retry_after
        self.events: list[FailoverEvent] = []
        self._where: dict[str, _Member] = {}
        self._affinity: dict[str, _Member] = {}
        self._checks: set[asyncio.Task[None]] = set()

    @classmethod
    async def open(cls, urls: Sequence[str], model: str | None = None, tokenizer: Any = None,
                   retry_after: float = RETRY_AFTER) -> FailoverBackend:
        """Open and probe every server (one UserError for the first that cannot be used)."""
        from agent.backends.server import ServerBackend

        opened: list[Any] = []
        try:
            for url in urls:
                b = await ServerBackend.open(url, model=model, tokenizer=tokenizer)
                tokenizer = tokenizer or b.tokenizer  # load it once
                opened.append(b)
        except BaseException:
            for b in opened:
                await b.close()
            raise
        return cls(opened, retry_after)

    # -- choosing a server ------------------------------------------------------------------

    def _live(self) -> list[_Member]:
        now = time.monotonic()
        for m in self.members:
            if m.down and now >= m.retry_at and not any(t.get_name() == m.url for t in self._checks):
                task = asyncio.create_task(self._check(m), name=m.url)
                self._checks.add(task)
                task.add_done_callback(self._checks.discard)
        return [m for m in self.members if not m.down]

    async def _pick(self, key: str) -> _Member:
        live = self._live()
        if not live:
            await asyncio.gather(*(self._check(m) for m in self.members))
            live = [m for m in self.members if not m.down]
        if not live:
            why = "; ".join(f"{m.url} ({m.down})" for m in self.members)
            raise BackendError(f"every server is down: {why}", "failover")
        least = min(live, key=lambda m: m.outstanding)
        sticky = self._affinity.get(key)
        if sticky is not None and not sticky.down and sticky.outstanding <= least.outstanding + AFFINITY_SLACK:
            return sticky
        self._affinity[key] = least
        return least

    def _mark_down(self, member: _Member, err: ServerDown) -> FailoverEvent:
        if not member.down:
            member.down = err.message
            member.failures += 1
            member.retry_at = time.monotonic() + self.retry_after * 2 ** min(member.failures - 1, 3)
            left = sum(not m.down for m in self.members)
            log.warning(f"server {member.url} is down ({err.message}); taken out of rotation, {left} left, "
                        f"its requests continue elsewhere")
            self.events.append(FailoverEvent(member.url, err.message, time.monotonic()))
        return next(e for e in reversed(self.events) if e.url == member.url)

    async def _check(self, member: _Member) -> None:
        if not member.down:
            return
        if await member.backend.healthy():
            member.down = ""
            log.warning(f"server {member.url} answers again; back in rotation")
        else:
            member.retry_at = time.monotonic() + self.retry_after * 2 ** min(member.failures, 3)
            member.failures += 1

    # -- the Backend interface --------------------------------------------------------------

    async def stream(self, prompt_ids: Sequence[int], params: GenParams, request_id: str) -> AsyncIterator[Chunk]:
        """Yield the request's chunks; on a server's death, continue it on another from the tokens so far."""
        got: list[int] = []
        died: FailoverEvent | None = None
        key = affinity_key(request_id)
        while True:
            left = params.max_tokens - len(got)
            if left <= 0:
                yield Chunk("", (), finish_reason="length")
                return
            member = await self._pick(key)
            member.outstanding += 1
            self._where[request_id] = member
            try:
                async with contextlib.aclosing(
                    member.backend.stream([*prompt_ids, *got], replace(params, max_tokens=left), request_id)
                ) as chunks:
                    async for ch in chunks:
                        if died is not None:
                            died.resumed.append(time.monotonic())
                            died = None
                        got.extend(ch.token_ids)
                        yield ch
                        if ch.finish_reason:
                            return
                return
            except ServerDown as e:
                died = self._mark_down(member, e)
            finally:
                member.outstanding -= 1
                self._where.pop(request_id, None)

    async def abort(self, request_id: str) -> None:
        member = self._where.get(request_id)
        if member is not None:
            await member.backend.abort(request_id)

    async def close(self) -> None:
        for t in list(self._checks):
            t.cancel()
        for m in self.members:
            await m.backend.close()
