#!/usr/bin/env bash
# The one-command GPU check (benchmarks/device_check.md): plain python3, no install of this repo
# needed; arguments go to `python3 -m benchmarks.device_check` (e.g. --tiny, --steps 100).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD"
exec "${PYTHON:-python3}" -m benchmarks.device_check "$@"
