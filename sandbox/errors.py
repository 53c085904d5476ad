"""The one exception type for a user's mistake (bad input, missing file, bad option).

Every package raises `UserError` for things the user can fix; the CLI turns it into one
line on stderr and exit code 2. Bugs stay ordinary exceptions with tracebacks. This module
lives in `sandbox` only because `sandbox` is the bottom of the one-way dependency chain.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix: the message says what was wrong and where."""


def one_line_error(message: str) -> str:
    """argparse's message as one line with the flag in its dashed spelling
    ("argument --a-b/--a_b: invalid int value: 'x'" -> "--a-b: invalid int value: 'x'")."""
    import re

    m = re.match(r"argument (\S+?): (.*)", message, re.S)
    if m:
        return f"{m.group(1).split('/')[0]}: {m.group(2)}".splitlines()[0]
    if message.startswith("unrecognized arguments:"):
        return f"unknown flag or extra argument:{message.split(':', 1)[1]} (see --help)"
    return message.splitlines()[0]


def _argparse_base() -> type:
    import argparse

    return argparse.ArgumentParser


class ArgumentParser(_argparse_base()):  # type: ignore[misc]
    """argparse whose usage errors are one `UserError` (one line, exit 2) instead of usage + exit."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(one_line_error(message))
