"""Terminal views of a running problem, driven by `agent.events.Event`s.

`LiveView` (a TTY): a table of samples (mode, tokens, tool calls, status, answer), the last
code cell and output, the running vote and the clock, redrawn a few times a second with rich.
`LogView` (not a TTY, e.g. CI logs or pipes): one plain line per code cell, output, finished
sample and vote change. Both write to stderr so stdout stays clean for `--json`.
Not covered: anything that decides; views only show.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

from agent.events import Event
from agent.types import Vote


@dataclass
class _Row:
    mode: str = ""
    tokens: int = 0
    tools: int = 0
    status: str = "running"
    answer: str = ""


def _short(text: str, n: int = 200) -> str:
    text = text.strip()
    return text if len(text) <= n else text[: n // 2] + " … " + text[-n // 2 :]


def _tally_text(vote: Vote | None, top: int = 5) -> str:
    if vote is None or not vote.tally:
        return "no votes yet"
    return "  ".join(f"{a}: {w:g} ({c})" for a, w, c in vote.tally[:top])


class LogView:
    """Plain line-per-event log."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.out = stream or sys.stderr
        self.t0 = time.monotonic()

    def _say(self, msg: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.1f}s] {msg}", file=self.out, flush=True)

    def __call__(self, ev: Event) -> None:
        if ev.kind == "start":
            self._say(f"sample {ev.index} started ({ev.text})")
        elif ev.kind == "code":
            self._say(f"sample {ev.index} runs code: {_short(ev.text)!r}")
        elif ev.kind == "output":
            self._say(f"sample {ev.index} output [{ev.status}]: {_short(ev.text)!r}")
        elif ev.kind == "done" and ev.trace is not None:
            t = ev.trace
            ans = t.answer.raw if t.answer else "-"
            err = f" ({t.error})" if t.error else ""
            self._say(f"sample {t.index} done: {t.finish}{err}, answer {ans}, {t.tokens} tokens, {t.tool_calls} tool calls")
        elif ev.kind == "vote":
            self._say(f"vote: {_tally_text(ev.vote)}")
        elif ev.kind == "stop":
            self._say(f"stopping early: {ev.text}")

    def close(self) -> None:
        pass


class LiveView:
    """A rich Live table, redrawn at most every 0.25 s."""

    def __init__(self, title: str, stream: TextIO | None = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.title = title
        self.rows: dict[int, _Row] = {}
        self.last_cell = ""
        self.last_output = ""
        self.vote: Vote | None = None
        self.note = ""
        self.t0 = time.monotonic()
        self._last_draw = 0.0
        self.console = Console(file=stream or sys.stderr)
        self.live = Live(self._render(), console=self.console, auto_refresh=False, transient=False)
        self.live.start()

    def _render(self) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        table = Table(title=f"{self.title}  [{time.monotonic() - self.t0:.1f}s]", expand=False)
        for col in ("#", "mode", "tokens", "tools", "status", "answer"):
            table.add_column(col)
        for i in sorted(self.rows):
            r = self.rows[i]
            table.add_row(str(i), r.mode, str(r.tokens), str(r.tools), r.status, r.answer)
        parts: list[Any] = [table, Text(f"vote: {_tally_text(self.vote)}")]
        if self.last_cell:
            parts.append(Text(f"last code:\n{_short(self.last_cell, 400)}", style="cyan"))
        if self.last_output:
            parts.append(Text(f"last output:\n{_short(self.last_output, 400)}", style="green"))
        if self.note:
            parts.append(Text(self.note, style="bold yellow"))
        return Group(*parts)

    def __call__(self, ev: Event) -> None:
        row = self.rows.setdefault(ev.index, _Row()) if ev.index >= 0 else None
        if ev.kind == "start" and row is not None:
            row.mode = ev.text
        elif ev.kind == "text" and row is not None:
            row.tokens = ev.tokens
        elif ev.kind == "code":
            self.last_cell = f"[sample {ev.index}] {ev.text}"
        elif ev.kind == "output" and row is not None:
            row.tools += 1
            self.last_output = f"[sample {ev.index}] {ev.text}"
        elif ev.kind == "done" and row is not None and ev.trace is not None:
            row.status, row.tokens = ev.trace.finish, ev.trace.tokens
            if ev.trace.error:  # the server's or engine's own message, shortened to fit the table
                row.status = f"error: {_short(ev.trace.error, 60)}"
            row.answer = ev.trace.answer.raw if ev.trace.answer else "-"
        elif ev.kind == "vote":
            self.vote = ev.vote
        elif ev.kind == "stop":
            self.note = f"stopping early: {ev.text}"
        now = time.monotonic()
        if ev.kind != "text" or now - self._last_draw > 0.25:
            self._last_draw = now
            self.live.update(self._render(), refresh=True)

    def close(self) -> None:
        self.live.update(self._render(), refresh=True)
        self.live.stop()


def make_view(title: str, quiet: bool = False) -> LogView | LiveView | None:
    if quiet:
        return None
    if sys.stderr.isatty():
        return LiveView(title)
    return LogView()
