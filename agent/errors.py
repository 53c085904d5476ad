"""Re-export of the user-error type so agent code and its callers need not import sandbox."""

from sandbox.errors import UserError

__all__ = ["UserError"]
