"""FailoverBackend's routing and failover rules on fake servers (the real two-server test is
tests/evals/test_failover_real.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from agent.backends.base import BackendError, Chunk, GenParams
from agent.backends.errors import ServerDown, ServerError
from agent.backends.failover import FailoverBackend, affinity_key
from tests.fakes import CharTokenizer


class FakeServer:
    """Streams 'abcdefgh...' one char a chunk; `die_after` chunks then the connection drops."""

    def __init__(self, url: str, die_after: int | None = None, refuse: bool = False) -> None:
        self.url, self.die_after, self.refuse = url, die_after, refuse
        self.tokenizer, self.max_model_len = CharTokenizer(), 100
        self.prompts: list[str] = []
        self.alive = True
        self.gate = asyncio.Event()
        self.gate.set()

    async def stream(self, prompt_ids: Sequence[int], params: GenParams, rid: str) -> AsyncIterator[Chunk]:
        if not self.alive or self.refuse:
            raise ServerDown(self.url, None, "ClientConnectorError: connection refused")
        self.prompts.append(self.tokenizer.decode(prompt_ids))
        for i in range(params.max_tokens):
            await self.gate.wait()
            if self.die_after is not None and i >= self.die_after:
                self.alive = False
                raise ServerDown(self.url, None, "stream broke off (ServerDisconnectedError)")
            yield Chunk(chr(ord("a") + i), (ord("a") + i,),
                        finish_reason="length" if i == params.max_tokens - 1 else None)

    async def abort(self, rid: str) -> None:
        pass

    async def healthy(self) -> bool:
        return self.alive and not self.refuse

    async def close(self) -> None:
        pass


async def collect(b: Any, prompt: str, n: int, rid: str = "p#0#1#0") -> str:
    ids = CharTokenizer().encode(prompt)
    return "".join([c.text async for c in b.stream(ids, GenParams(max_tokens=n), rid)])


async def test_a_dying_server_s_request_continues_elsewhere_from_its_tokens(caplog: Any) -> None:
    a, b = FakeServer("http://a", die_after=3), FakeServer("http://b")
    pool = FailoverBackend([a, b], retry_after=60)
    text = await collect(pool, "Q:", 6)
    # three tokens from a, then b continues the prompt plus those tokens with the rest of the budget
    assert text == "abc" + "abc"
    assert b.prompts == ["Q:abc"]
    assert [m.down != "" for m in pool.members] == [True, False]
    assert [r.getMessage() for r in caplog.records if "down" in r.getMessage()] == [
        "server http://a is down (stream broke off (ServerDisconnectedError)); taken out of rotation, "
        "1 left, its requests continue elsewhere"]
    assert len(pool.events) == 1 and len(pool.events[0].resumed) == 1


async def test_every_server_down_is_one_error_naming_them() -> None:
    pool = FailoverBackend([FakeServer("http://a", refuse=True), FakeServer("http://b", refuse=True)])
    with pytest.raises(BackendError, match=r"every server is down: http://a \(.*refused\); http://b"):
        await collect(pool, "Q:", 3)


async def test_load_goes_to_the_least_busy_server_and_problems_stick() -> None:
    a, b = FakeServer("http://a"), FakeServer("http://b")
    a.gate.clear()
    b.gate.clear()
    pool = FailoverBackend([a, b])
    tasks = [asyncio.create_task(collect(pool, f"P{i}", 2, f"p{i}#0#1#0")) for i in range(4)]
    await asyncio.sleep(0.05)
    assert [m.outstanding for m in pool.members] == [2, 2]  # not all on one, whatever the order
    a.gate.set()
    b.gate.set()
    await asyncio.gather(*tasks)
    # a problem's next round goes back to the same server (its prefix is cached there)
    first = next(m for m in pool.members if "P0" in m.backend.prompts)
    await collect(pool, "P0 more", 2, "p0#0#1#1")
    assert "P0 more" in first.backend.prompts
    assert affinity_key("aime#12#0#555#3") == "aime#12"


async def test_a_down_server_rejoins_after_its_retry_time(caplog: Any) -> None:
    a, b = FakeServer("http://a", die_after=1), FakeServer("http://b")
    pool = FailoverBackend([a, b], retry_after=0.0)
    await collect(pool, "Q:", 3)
    a.alive, a.die_after = True, None
    pool._live()  # due for a retry: a health check starts
    await asyncio.sleep(0.05)
    assert all(not m.down for m in pool.members)
    assert any("back in rotation" in r.getMessage() for r in caplog.records)


async def test_a_request_error_is_not_a_failover() -> None:
    class Refusing(FakeServer):
        async def stream(self, prompt_ids: Sequence[int], params: GenParams, rid: str) -> AsyncIterator[Chunk]:
            raise ServerError(self.url, 400, "max_tokens too large")
            yield Chunk("", ())

    pool = FailoverBackend([Refusing("http://a"), FakeServer("http://b")])
    pool.members[1].outstanding = 5  # make a the choice
    with pytest.raises(ServerError, match="HTTP 400: max_tokens too large"):
        await collect(pool, "Q:", 3)
    assert not pool.members[0].down
