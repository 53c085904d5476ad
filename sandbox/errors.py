"""The one exception type for a user's mistake (bad input, missing file, bad option).

Every package raises `UserError` for things the user can fix; the CLI turns it into one
line on stderr and exit code 2. Bugs stay ordinary exceptions with tracebacks. This module
lives in `sandbox` only because `sandbox` is the bottom of the one-way dependency chain.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix: the message says what was wrong and where."""
