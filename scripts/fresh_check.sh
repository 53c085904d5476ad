#!/usr/bin/env bash
# README command 1 as a new user meets it: a clean clone of the committed tree with nothing beside
# it (no ../shared), a fresh virtual environment, an empty model cache; then one small solve.
#   bash scripts/fresh_check.sh      (CI runs it after the tests)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d /tmp/tirmath-fresh.XXXXXX)"
trap 'rm -rf "$work"' EXIT
git clone -q "$repo" "$work/tirmath"
python -m venv "$work/venv"
# shellcheck disable=SC1091
. "$work/venv/bin/activate"
export TIRMATH_CACHE="$work/cache"
unset TIRMATH_DATA_DIR
cd "$work/tirmath"
start=$(date +%s)
bash scripts/setup.sh
echo "fresh-check: setup took $(( $(date +%s) - start )) s" >&2
start=$(date +%s)
tirmath solve "What is the remainder when 2^100 is divided by 7?" --samples 2 --max-tokens 64 --quiet 2> "$work/err.txt" \
  || { cat "$work/err.txt" >&2; exit 1; }
cat "$work/err.txt" >&2
# the kernel template must work with the newest ipykernel/IPython a fresh install gets (else: cold starts)
if grep -q "kernel template did not start" "$work/err.txt"; then echo "fresh-check: the kernel template failed" >&2; exit 1; fi
tirmath solve --dataset aime2025 --id 2025-I-1 --samples 2 --tir-ratio 0 --max-tokens 32 --json > "$work/out.json"
python -c "import json,sys; r=json.load(open(sys.argv[1])); assert r['problem']['id']=='2025-I-1', r" "$work/out.json"
echo "fresh-check: two solves took $(( $(date +%s) - start )) s; README command 1 works on a clean clone" >&2
