"""Error types callers of the whole program see.

- `UserError` (re-exported from sandbox so agent code need not import it): a user mistake,
  one line on stderr, exit code 2, raised before any engine starts.
- `RunStopped`: the run cannot go on for a reason outside the backends (the run store's disk
  is full); one line on stderr, exit code 1, like `agent.backends.base.BackendError`.
  Everything finished so far is stored, and rerunning the same command resumes.
"""

from sandbox.errors import UserError


class RunStopped(RuntimeError):
    """The run had to stop; `str()` is one line saying why."""


__all__ = ["UserError", "RunStopped"]
