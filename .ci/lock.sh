#!/usr/bin/env bash
# Refresh .ci/constraints.txt: install the newest releases that satisfy pyproject.toml into a fresh
# virtual environment (the CPU torch wheel first, as in .ci/run) and freeze it.
#   .ci/lock.sh            rewrite .ci/constraints.txt
# Run the suite against the newest releases instead of the lock: ROLECRAFT_CI_NEWEST=1 .ci/run
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$(mktemp -d)/venv"
python -m venv "$venv"
"$venv/bin/pip" install -q torch==2.13.0
"$venv/bin/pip" install -q -e ".[dev]"
{
  echo "# pip constraints for .ci/run, written by .ci/lock.sh on $(date -u +%F); refresh with .ci/lock.sh"
  "$venv/bin/pip" freeze --exclude-editable | sed -E 's/^(torch==[0-9.]+)\+cpu$/\1/' | grep -v '^rolecraft'
} > .ci/constraints.txt.tmp
mv .ci/constraints.txt.tmp .ci/constraints.txt
rm -rf "$(dirname "$venv")"
echo "wrote .ci/constraints.txt ($(grep -vc '^#' .ci/constraints.txt) packages)"
