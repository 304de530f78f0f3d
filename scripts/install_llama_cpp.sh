#!/usr/bin/env bash
# Build llama-cpp-python without Intel AMX instructions, unless an AMX-free build is already installed.
#
# llama-cpp-python compiles llama.cpp with -march=native. On an Intel CPU with AMX (Sapphire Rapids and
# later) that turns on ggml's AMX matmul path, which crashes in llama_decode on virtualised AMX hosts
# (ggml-org/llama.cpp#20824); GGML_AMX=OFF does not help (the native flags turn AMX back on). The C and C++
# flags below keep the native AVX-512/VNNI and drop AMX. pip's wheel cache would hand back a native AMX
# wheel built earlier on this machine whatever CMAKE_ARGS says, so the build bypasses the cache.
# Whether the installed build has AMX is read from llama.cpp's own feature report
# (llama_print_system_info, checked by edgevlm/runtime/backends/llamacpp_amx.py): a build that reports no
# AMX (including every build on a CPU without AMX) is kept, so a re-run takes about a second.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
NO_AMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"

check() {  # exit status: 0 = AMX-free build installed, 1 = it reports AMX, 2 = llama_cpp does not import
  $PY -c "import runpy; runpy.run_path('edgevlm/runtime/backends/llamacpp_amx.py', run_name='__main__')" \
    >/dev/null 2>&1
}

status=0
check || status=$?
if [ "$status" -eq 0 ]; then
  echo "[install] llama-cpp-python: the installed build has no AMX; kept"
  exit 0
fi
if [ "$status" -eq 1 ]; then
  version=$($PY -c "import llama_cpp; print(llama_cpp.__version__)")
  requirement="llama-cpp-python==$version"  # the same version, rebuilt
  echo "[install] llama-cpp-python $version reports AMX (llama_print_system_info): rebuilding it without AMX"
else
  requirement=$(grep -o '"llama-cpp-python[^"]*"' pyproject.toml | head -n1 | tr -d '"')
  echo "[install] building $requirement from source without AMX (about 7 minutes on 2 cores)"
fi

# A compiler that does not know the flags (an older GCC, or a non-x86 target) cannot emit AMX either.
cmake_args=${CMAKE_ARGS:-}
if echo 'int main(void) { return 0; }' | ${CC:-cc} $NO_AMX -x c -o /dev/null - >/dev/null 2>&1; then
  cmake_args="$cmake_args -DCMAKE_C_FLAGS='$NO_AMX' -DCMAKE_CXX_FLAGS='$NO_AMX'"
fi
# --no-deps: a forced reinstall must not upgrade numpy & co.; the editable install brings the dependencies.
CMAKE_ARGS="$cmake_args" $PY -m pip install --quiet --force-reinstall --no-deps --no-cache-dir \
  --no-binary llama-cpp-python "$requirement"
$PY -m pip install --quiet "$requirement"  # its dependencies, if missing (the build above is kept)

status=0
check || status=$?
if [ "$status" -ne 0 ]; then
  echo "[install] error: the new llama-cpp-python build still reports AMX or does not import (check status" \
       "$status; see: $PY edgevlm/runtime/backends/llamacpp_amx.py). Does ${CC:-cc} honour $NO_AMX?" >&2
  exit 1
fi
echo "[install] llama-cpp-python: built without AMX"
