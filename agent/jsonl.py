"""Reading JSONL files of records, with errors that name the file and line.

`read_jsonl(path)` yields (line number, object) for each non-blank line and raises `UserError`
for a line that is not a JSON object. Shared by dataset loaders, run-store readers and training
data builders. Writing, torn-tail handling and schema checks belong to the callers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agent.errors import UserError


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) for every non-blank line; UserError naming file and line otherwise."""
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{path} line {line_no}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise UserError(f"{path} line {line_no}: expected a JSON object, got {type(row).__name__}")
            yield line_no, row
