#!/usr/bin/env bash
# Install edgevlm with everything the tests and the demo need, on a fresh machine.
# torch is pinned to the CPU wheel first: an unpinned torch would pull gigabytes of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
$PY -m pip install --quiet --upgrade pip
$PY -m pip install --quiet torch==2.13.0
# llama-cpp-python compiles llama.cpp from source (about 7 minutes on 2 cores) the first time, without
# Intel AMX (its path crashes on virtualised AMX hosts); an AMX-free build already installed is kept.
bash scripts/install_llama_cpp.sh
$PY -m pip install --quiet -e ".[test,gguf,coreml,bench]"
