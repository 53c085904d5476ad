"""The tirmath agent: prompts, backends, the TIR loop, answers, votes and `solve`.

`from agent import Solver` gives the Python API (agent/api.py), imported on first use so that
`import agent` stays light.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["Solver", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Solver":
        from agent.api import Solver

        return Solver
    raise AttributeError(f"module 'agent' has no attribute {name!r}")
