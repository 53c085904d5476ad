"""tirmath's composition root: the `tirmath` command line (tirmath.cli) and nothing else.

The work lives in four packages that depend one way, `sandbox` <- `agent` <- `evals` <- `training`
(import-linter holds this in CI); this package sits above all four and only dispatches.
"""

from agent import __version__

__all__ = ["__version__"]
