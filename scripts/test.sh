#!/usr/bin/env bash
# The test command: install, then run the default test tier (tiny models, offline).
# EDGEVLM_SLOW=1 adds the slow tier (real Gemma 3 270M weights).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
PY=${PYTHON:-python3}
if [ -d android_demo ] && [ -f android_demo/core/build.sh ]; then
  bash android_demo/core/build.sh --install-deps
fi
$PY -m pytest -q "$@"
