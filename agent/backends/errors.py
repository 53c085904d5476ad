"""Errors a backend raises, so callers can tell a bad request from a dead backend.

- `ServerError`: one request failed with an HTTP error; the message carries the server's own
  words (the JSON `message` / `detail`), on one line. The sample ends in `error` with it.
- `ServerDown`: one server stopped answering (connection refused or reset, a stalled stream,
  HTTP 5xx). A failover pool (`agent.backends.failover`) takes the server out of rotation and
  continues elsewhere.
Both are `base.BackendError`s: not one sample's failure, so the TIR loop lets them through and
the run stops with one line and exit code 1 (a rerun resumes), unless failover handles them.

Not covered: retry policy (failover.py), what a server accepts (server_probe.py).
"""

from __future__ import annotations

import json
from typing import Any

from agent.backends.base import BackendError


class ServerError(BackendError):
    """An HTTP error answer to one request; `str()` is one line naming the server and its message."""

    def __init__(self, url: str, status: int | None, message: str) -> None:
        self.url, self.status, self.message = url, status, message
        super().__init__(f"server {url} answered HTTP {status}: {message}" if status is not None
                         else f"server {url}: {message}", url)


class ServerDown(ServerError):
    """One server stopped answering (refused, reset, stalled, 5xx)."""


def error_message(body: str | bytes, limit: int = 400) -> str:
    """The server's own words from an error body, on one line.

    Understands OpenAI/vLLM (`{"error": {"message"}}`, `{"message"}`), FastAPI/pydantic
    (`{"detail": [{"loc", "msg"}]}`) and plain text; an empty body says so.
    """
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data: Any = json.loads(text)
    except (json.JSONDecodeError, ValueError):
        data = None
    msg = _json_message(data) if data is not None else None
    out = msg if msg else text.strip()
    out = " ".join(out.split())
    if not out:
        return "(empty body)"
    return out if len(out) <= limit else out[: limit - 3] + "..."


def _json_message(data: Any) -> str | None:
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str) and err:
            return err
        if data.get("message"):
            return str(data["message"])
        detail = data.get("detail")
        if isinstance(detail, list):
            parts = []
            for d in detail:
                if isinstance(d, dict):
                    loc = ".".join(str(x) for x in d.get("loc", ()) if x != "body")
                    parts.append(f"{loc}: {d.get('msg', d)}" if loc else str(d.get("msg", d)))
            return "; ".join(parts) or None
        if isinstance(detail, str):
            return detail
    return None
