"""The AMX guard (runtime/backends/llamacpp_amx.py): on an AMX build of llama.cpp, models load without
llama.cpp's extra buffer types, so ggml's AMX matmul path (which crashes on virtualised AMX hosts) is
never taken, and one warning line says why and how to rebuild.

What llama.cpp did is read from llama.cpp itself: the ``llama_model_params`` each real
``llama_model_load_from_file`` call received, and the weight buffers its loader reports in its log
("CPU_REPACK model buffer size = ..." means an extra buffer type was used). On a host without AMX (this
AMD machine) the AMX report is simulated by replacing the system-info reader; on a real AMX build, a
subprocess decodes through the guard (without it, that process dies with SIGSEGV on virtualised hosts).
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
llama_cpp = pytest.importorskip("llama_cpp")

import llama_cpp.llama_cpp as bindings  # noqa: E402
from llama_cpp import _logger  # noqa: E402

import edgevlm  # noqa: E402
from edgevlm.runtime.backends import llamacpp_amx  # noqa: E402

pytestmark = pytest.mark.gguf
ROOT = Path(__file__).resolve().parents[1]
WARNING = "[edgevlm] warning: this llama.cpp build uses Intel AMX"
# What a Sapphire Rapids build reports (the host); the AMD build here reports no AMX_* feature.
SPR_INFO = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX_VNNI = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | "
            "AVX512 = 1 | AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | AMX_INT8 = 1 | LLAMAFILE = 1 | "
            "OPENMP = 1 | REPACK = 1 | ")


@pytest.fixture(scope="module")
def q4_bundle(tiny, tmp_path_factory):
    """A tiny MiniCPM-V GGUF bundle with a Q4_0 text model (weights llama.cpp's CPU_REPACK takes) + mmproj."""
    root = tmp_path_factory.mktemp("amx")
    edgevlm.export(str(tiny("minicpmv-2.6")), str(root / "f32"), format="gguf", validate=False, progress=None)
    edgevlm.quantize(str(root / "f32"), str(root / "q4"), recipe="q4_0", progress=None)
    return root / "q4"


class LoadWatch:
    """Records, for every real llama_model_load_from_file call, the use_extra_bufts it was given, and
    llama.cpp's own log lines about weight buffers."""

    def __init__(self, monkeypatch):
        self.extra_bufts: list[bool] = []
        self.buffers: list[str] = []
        load = bindings.llama_model_load_from_file

        def recording_load(path, params):
            self.extra_bufts.append(bool(params.use_extra_bufts))
            return load(path, params)

        # Our backends call llama_cpp.llama_model_load_from_file; Llama (via _internals) the bindings' one.
        monkeypatch.setattr(llama_cpp, "llama_model_load_from_file", recording_load)
        monkeypatch.setattr(bindings, "llama_model_load_from_file", recording_load)

        @llama_cpp.llama_log_callback
        def collect(level, text, user_data):
            line = text.decode("utf-8", errors="replace")
            if "model buffer size" in line:
                self.buffers.append(line.strip())

        self._callback = collect  # llama.cpp holds a pointer to it
        llama_cpp.llama_log_set(collect, ctypes.c_void_p(0))

    def close(self) -> None:
        llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))

    @property
    def extra_buffers(self) -> list[str]:
        return [line for line in self.buffers if "CPU_REPACK" in line or "AMX" in line]


@pytest.fixture
def watch(monkeypatch):
    w = LoadWatch(monkeypatch)
    yield w
    w.close()


@pytest.fixture
def simulated_amx(monkeypatch):
    """This host's real llama.cpp, with its system-info report saying AMX_INT8 (as an AMX build's does)."""
    real = llamacpp_amx.system_info()
    monkeypatch.setattr(llamacpp_amx, "system_info", lambda: real + "AMX_INT8 = 1 | ")
    monkeypatch.setattr(llamacpp_amx, "_warned", False)


def _open_everything(bundle: Path):
    """Every place edgevlm loads a llama.cpp model: the backend (twice), mtmd, the benchmarks' Llama.
    Returns the backend's logits of a short prompt and the Llama's, both from the guarded loads."""
    from edgevlm.manifest import read_manifest
    from edgevlm.runtime.backends.llamacpp import LlamaCppBackend
    from edgevlm.runtime.backends.llamacpp_mtmd import MtmdImageEncoder

    ids = np.arange(5, 25)
    manifest = read_manifest(bundle)
    backend = LlamaCppBackend(bundle, manifest, threads=2)
    try:
        logits = backend.forward(ids)
        for token in range(4):  # decode steps: the path that crashed (llama_decode)
            logits = backend.forward(np.array([int(np.argmax(logits))]))
    finally:
        backend.close()
    LlamaCppBackend(bundle, manifest, threads=2).close()
    MtmdImageEncoder(bundle / "text.gguf", bundle / "mmproj.gguf", threads=2).close()
    llm = llamacpp_amx.open_llama(str(bundle / "text.gguf"), n_ctx=64, n_threads=2, verbose=False)
    llm.eval(ids.tolist())
    llm.close()
    return logits


def test_amx_reports_are_recognised():
    assert llamacpp_amx.reports_amx(SPR_INFO)
    assert llamacpp_amx.reports_amx("CPU : AVX2 = 1 | AMX_BF16 = 1 | ")
    assert not llamacpp_amx.reports_amx(SPR_INFO.replace("AMX_INT8 = 1 | ", ""))
    assert not llamacpp_amx.reports_amx("CPU : AMX_INT8 = 0 | AVX2 = 1 | ")


def test_simulated_amx_report_loads_without_extra_buffer_types(q4_bundle, watch, simulated_amx, capfd):
    logits = _open_everything(q4_bundle)
    err = capfd.readouterr().err
    warnings = [line for line in err.splitlines() if WARNING in line]
    print(f"use_extra_bufts per load: {watch.extra_bufts}; weight buffers: {watch.buffers}; warning: {warnings}")
    assert watch.extra_bufts == [False] * 4  # backend, backend, mtmd's text model, Llama
    assert watch.buffers and not watch.extra_buffers  # llama.cpp put every weight in a plain CPU buffer
    assert len(warnings) == 1  # once per process, however many loads
    assert "ggml-org/llama.cpp#20824" in warnings[0] and llamacpp_amx.rebuild_command() in warnings[0]
    assert np.isfinite(logits).all()
    assert bindings.llama_model_default_params().use_extra_bufts  # open_llama put llama-cpp-python's default back


def test_build_without_amx_keeps_extra_buffer_types(q4_bundle, watch, capfd):
    """The control: the same loads on this host's real report keep llama.cpp's defaults, so the checks
    above can fail (on this AMD host, the Q4_0 weights then go to CPU_REPACK)."""
    info = llamacpp_amx.system_info()
    if llamacpp_amx.reports_amx(info):
        pytest.skip("this llama.cpp build reports AMX: the guard is always on here")
    _open_everything(q4_bundle)
    err = capfd.readouterr().err
    print(f"use_extra_bufts per load: {watch.extra_bufts}; weight buffers: {watch.buffers}")
    assert watch.extra_bufts == [True] * 4
    assert WARNING not in err
    if "REPACK = 1" in info:
        assert watch.extra_buffers


def test_amx_build_decodes_through_the_guard(q4_bundle):
    """On a real AMX build: generation through edgevlm in a fresh process completes, with
    use_extra_bufts off (without the guard it dies with SIGSEGV on virtualised AMX hosts)."""
    info = llamacpp_amx.system_info()
    if not llamacpp_amx.reports_amx(info):
        pytest.skip(f"this llama.cpp build has no AMX (llama_print_system_info: {info.strip()}); "
                    "test_simulated_amx_report_loads_without_extra_buffer_types covers the guard here")
    script = textwrap.dedent(f"""
        import numpy as np, llama_cpp, edgevlm
        load = llama_cpp.llama_model_load_from_file
        def recording_load(path, params):
            print("use_extra_bufts", bool(params.use_extra_bufts), flush=True)
            return load(path, params)
        llama_cpp.llama_model_load_from_file = recording_load
        vlm = edgevlm.load({str(q4_bundle)!r}, threads=2)
        print("tokens", vlm.generate("Hello", max_new_tokens=8).token_ids, flush=True)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    print(run.stdout, run.stderr[-2000:])
    assert run.returncode == 0, f"generation crashed (exit {run.returncode}) on this AMX build"
    assert "use_extra_bufts False" in run.stdout and "use_extra_bufts True" not in run.stdout
    assert run.stderr.count(WARNING) == 1
