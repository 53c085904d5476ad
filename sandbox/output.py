"""Collect a cell's output from Jupyter IOPub messages: capped, made safe, images noted.

Keeps the head and the tail of the text (the middle is cut with a note), counts everything seen
so the caller can stop a flooding cell, strips ANSI escapes and control characters, turns lone
surrogates into U+FFFD, and keeps only the last lines of a traceback. It does not talk to the
kernel; kernel.py feeds it messages.
"""

from __future__ import annotations

import re
from typing import Any

ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
SURROGATE = re.compile("[\ud800-\udfff]")


def make_safe(text: str) -> str:
    """Printable text: no ANSI escapes, no control characters but \\n and \\t, no lone surrogates."""
    text = ANSI.sub("", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = CONTROL.sub("", text)
    return SURROGATE.sub("\ufffd", text)


class OutputCollector:
    """Head+tail of a cell's text output within `limit` characters."""

    def __init__(self, limit: int, flood: int, error_lines: int = 5) -> None:
        self.limit, self.flood, self.error_lines = limit, flood, error_lines
        self.head: list[str] = []
        self.head_len = 0
        self.tail = ""
        self.total = 0
        self.error_name: str | None = None
        self.error_text = ""

    @property
    def flooded(self) -> bool:
        return self.total > self.flood

    @property
    def truncated(self) -> bool:
        return self.total > self.limit

    def add(self, text: str) -> None:
        if not text:
            return
        self.total += len(text)
        room = self.limit // 2 - self.head_len
        if room > 0:
            piece = text[:room]
            self.head.append(piece)
            self.head_len += len(piece)
            text = text[room:]
        if text:
            self.tail = (self.tail + text)[-(self.limit - self.limit // 2) :]

    def add_message(self, msg_type: str, content: dict[str, Any]) -> None:
        """Fold one IOPub message (stream, execute_result, display_data, error) into the output."""
        if msg_type == "stream":
            self.add(make_safe(str(content.get("text", ""))))
        elif msg_type in ("execute_result", "display_data", "update_display_data"):
            data = content.get("data", {})
            images = sorted(k for k in data if k.startswith("image/"))
            if images:
                self.add(f"[{', '.join(images)} output omitted]\n")
            elif "text/plain" in data:
                self.add(make_safe(str(data["text/plain"])) + "\n")
        elif msg_type == "error":
            self.set_error(str(content.get("ename", "Error")), str(content.get("evalue", "")),
                           [str(x) for x in content.get("traceback", [])])

    def set_error(self, name: str, value: str, traceback: list[str]) -> None:
        self.error_name = name
        lines = [ln for ln in make_safe("\n".join(traceback)).splitlines() if ln.strip()]
        if not lines:
            lines = [f"{name}: {value}"]
        self.error_text = "\n".join(lines[-self.error_lines :])

    def render(self) -> str:
        body = "".join(self.head)
        if self.total > self.limit:
            cut = self.total - self.head_len - len(self.tail)
            body += f"\n[... {cut} characters of output cut ...]\n" + self.tail
        elif self.tail:
            body += self.tail
        if self.error_text:
            if body and not body.endswith("\n"):
                body += "\n"
            body += self.error_text
        return body
