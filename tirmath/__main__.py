"""`python -m tirmath` is the `tirmath` command."""

import sys

from tirmath.cli import main

if __name__ == "__main__":
    sys.exit(main())
