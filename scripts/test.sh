#!/usr/bin/env bash
# Set up everything the tests need, then lint, type-check and run the whole test suite.
# Extra arguments go to pytest (e.g. bash scripts/test.sh -k sandbox).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
echo "== ruff" >&2
python -m ruff check .
echo "== mypy" >&2
python -m mypy
echo "== import-linter (one-way layers, no cycles)" >&2
lint-imports
echo "== README command 1 on a clean clone in a fresh venv (scripts/fresh_check.sh)" >&2
bash scripts/fresh_check.sh
echo "== pytest" >&2
python -m pytest "$@"
