"""llama.cpp builds with Intel AMX: detect them and load models so that ggml's AMX path is never taken.

llama-cpp-python compiles llama.cpp with ``-march=native``. On an Intel CPU with AMX (Sapphire Rapids
and later) that compiles in ggml's AMX matmul kernels, which llama.cpp uses for every weight it places
in the CPU backend's "AMX" extra buffer type, and which crash (SIGSEGV in ``llama_decode``) on
virtualised AMX hosts (ggml-org/llama.cpp#20824). scripts/install.sh builds without AMX; for a build
made elsewhere, every place edgevlm loads a llama.cpp model takes its params from ``model_params`` (or
``open_llama`` for llama-cpp-python's ``Llama``): on an AMX build they carry ``use_extra_bufts = False``,
so weights stay in plain CPU buffers and no AMX kernel is ever selected. That also skips the CPU_REPACK
layouts (interleaved quant blocks), which costs decode speed on quantized models: a rebuild is better.

mtmd needs nothing more: clip.cpp puts the projector's weights in the backend's default buffer type,
never an extra one; only the text model mtmd is given is loaded through ``model_params``.

Run as a script (``python llamacpp_amx.py``; it imports nothing of edgevlm) it is scripts/install.sh's
check: exit 0 = installed build is AMX-free, 1 = it reports AMX, 2 = llama_cpp does not import.
"""

from __future__ import annotations

import re
import sys
import threading
from typing import Any

# The compiler flags that keep -march=native's AVX-512/VNNI but drop AMX (scripts/install.sh uses them).
NO_AMX_FLAGS = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
# A feature named AMX_* reported as on by any backend, e.g. "CPU : ... | AMX_INT8 = 1 | ...".
_AMX_FEATURE = re.compile(r"\bAMX\w*\s*=\s*1\b")

_lock = threading.Lock()
_warned = False


def system_info() -> str:
    """llama.cpp's feature report (``llama_print_system_info``) of the installed build."""
    import llama_cpp

    return llama_cpp.llama_print_system_info().decode("utf-8", errors="replace")


def reports_amx(info: str) -> bool:
    return bool(_AMX_FEATURE.search(info))


def rebuild_command() -> str:
    """The pip command that replaces the installed llama-cpp-python with an AMX-free build of the same version."""
    try:
        import llama_cpp

        version = f"=={llama_cpp.__version__}"
    except Exception:
        version = ""
    return (f"CMAKE_ARGS=\"-DCMAKE_C_FLAGS='{NO_AMX_FLAGS}' -DCMAKE_CXX_FLAGS='{NO_AMX_FLAGS}'\" python -m pip "
            "install --force-reinstall --no-deps --no-cache-dir --no-binary llama-cpp-python "
            f"llama-cpp-python{version}")


def amx_build() -> bool:
    """True if the installed llama.cpp has AMX kernels; warns once per process (one stderr line) if so."""
    global _warned
    if not reports_amx(system_info()):
        return False
    with _lock:
        if not _warned:
            _warned = True
            print("[edgevlm] warning: this llama.cpp build uses Intel AMX, whose matmul path crashes on virtualised "
                  "AMX hosts (ggml-org/llama.cpp#20824), so models load without llama.cpp's extra buffer types "
                  "(slower). Rebuild llama-cpp-python without AMX (or run scripts/install.sh): "
                  + rebuild_command(), file=sys.stderr, flush=True)
    return True


def model_params(**fields: Any):
    """``llama_model_default_params()`` with ``fields`` set, and ``use_extra_bufts = False`` on an AMX build."""
    import llama_cpp

    params = llama_cpp.llama_model_default_params()
    for name, value in fields.items():
        setattr(params, name, value)
    if amx_build():
        params.use_extra_bufts = False
    return params


def open_llama(model_path: str, **kwargs: Any):
    """``llama_cpp.Llama(model_path, **kwargs)``, loaded as ``model_params`` would on an AMX build.

    Llama (llama-cpp-python 0.3.x) has no use_extra_bufts argument: its constructor starts from
    ``llama_model_default_params()`` and loads at once. On an AMX build that function is replaced for the
    duration of the constructor (under a lock) by one whose params have use_extra_bufts off.
    """
    import llama_cpp
    import llama_cpp.llama_cpp as bindings

    if not amx_build():
        return llama_cpp.Llama(model_path=str(model_path), **kwargs)
    defaults = bindings.llama_model_default_params

    def without_extra_bufts():
        params = defaults()
        params.use_extra_bufts = False
        return params

    with _lock:
        bindings.llama_model_default_params = without_extra_bufts
        try:
            return llama_cpp.Llama(model_path=str(model_path), **kwargs)
        finally:
            bindings.llama_model_default_params = defaults


if __name__ == "__main__":
    try:
        info = system_info()
    except Exception as exc:  # not installed, or a broken build
        print(f"llama_cpp does not import: {exc}", file=sys.stderr)
        sys.exit(2)
    print(info.strip())
    sys.exit(1 if reports_amx(info) else 0)
