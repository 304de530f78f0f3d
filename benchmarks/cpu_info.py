"""Which CPU ran a benchmark, which of its instruction sets matter, and which kernels each engine chose.

The answer to "are we faster than llama.cpp" depends on the CPU: onnxruntime's MLAS and llama.cpp's ggml
pick different kernels on AVX2, AVX-512 VNNI and AMX machines. Every result therefore carries:

- ``cpu()``: the model name and the ISA flags that select kernels (from /proc/cpuinfo);
- ``onnxruntime_kernels(flags)``: the MLAS kernel families for MatMulNBits (w4/w8), MatMulInteger (int8)
  and fp32 GEMM. onnxruntime does not report its choice, so this applies MLAS's own dispatch rules
  (onnxruntime/core/mlas/lib/platform.cpp, ``MLAS_PLATFORM``) to the flags: AVX2 -> AVX-VNNI ->
  AVX-512 core -> AVX-512 VNNI for the n-bit GEMM; the int8 GEMM also takes AMX when AMX-TILE and
  AMX-INT8 are present (the n-bit GEMM has no AMX kernel);
- ``llamacpp_system_info()``: llama.cpp's own ``llama_print_system_info`` features that are on;
- ``BufferLog``: the weight buffer types llama.cpp logs while loading a model (``CPU_REPACK`` =
  interleaved quant blocks for the wide-SIMD kernels, ``AMX``, or plain ``CPU``).
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

# /proc/cpuinfo flag -> the name used in tables
ISA_FLAGS = {"avx2": "AVX2", "fma": "FMA", "f16c": "F16C", "avx_vnni": "AVX-VNNI", "avx512f": "AVX512F",
             "avx512bw": "AVX512BW", "avx512dq": "AVX512DQ", "avx512vl": "AVX512VL", "avx512_vnni": "AVX512-VNNI",
             "avx512_bf16": "AVX512-BF16", "avx512_fp16": "AVX512-FP16", "amx_tile": "AMX-TILE",
             "amx_int8": "AMX-INT8", "amx_bf16": "AMX-BF16"}


def _cpuinfo_field(name: str, text: str) -> str:
    for line in text.splitlines():
        if line.startswith(name) and ":" in line:
            return line.split(":", 1)[1].strip()
    return ""


def cpu(cpuinfo: str | None = None) -> dict[str, Any]:
    """{"model", "flags": {flag: bool}, "isa": "AVX2 FMA ... (no AVX-512, no AMX)"} of this machine."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    present = set(_cpuinfo_field("flags", cpuinfo).split())
    flags = {name: name in present for name in ISA_FLAGS}
    on = [label for name, label in ISA_FLAGS.items() if flags[name]]
    missing = [what for what, keys in (("AVX-512", ("avx512f",)), ("VNNI", ("avx512_vnni", "avx_vnni")),
                                       ("BF16", ("avx512_bf16", "amx_bf16")), ("AMX", ("amx_tile",)))
               if not any(flags[k] for k in keys)]
    isa = " ".join(on) or "none of the listed ISA extensions"
    if missing:
        isa += f" (no {', no '.join(missing)})"
    return {"model": _cpuinfo_field("model name", cpuinfo) or "unknown", "flags": flags, "isa": isa}


def onnxruntime_kernels(flags: dict[str, bool]) -> dict[str, str]:
    """MLAS kernel families onnxruntime dispatches to on a CPU with ``flags`` (cpu()["flags"])."""
    avx512_core = all(flags.get(f) for f in ("avx512f", "avx512bw", "avx512dq", "avx512vl"))
    if avx512_core and flags.get("avx512_vnni"):
        nbits, int8 = "SQNBitGemm AVX512-VNNI", "QGEMM U8S8 AVX512-VNNI"
    elif avx512_core:
        nbits, int8 = "SQNBitGemm AVX512", "QGEMM U8S8 AVX512 core"
    elif flags.get("avx2") and flags.get("avx_vnni"):
        nbits, int8 = "SQNBitGemm AVX2-VNNI", "QGEMM U8S8 AVX-VNNI"
    elif flags.get("avx2") and flags.get("fma"):
        nbits, int8 = "SQNBitGemm AVX2 (int8 dot products by vpmaddubsw)", "QGEMM U8S8 AVX2"
    else:
        nbits, int8 = "SQNBitGemm generic", "QGEMM U8S8 SSE"
    if flags.get("amx_tile") and flags.get("amx_int8"):
        int8 = "QGEMM U8S8 AMX (when the OS grants AMX state)"
    fp32 = "SGEMM AVX512F" if flags.get("avx512f") else "SGEMM FMA3 (AVX2)" if flags.get("fma") else "SGEMM SSE/AVX"
    return {"matmul_nbits": nbits, "matmul_integer": int8, "sgemm": fp32,
            "how": "MLAS's dispatch rules (platform.cpp) applied to the CPU flags; onnxruntime does not report it"}


def llamacpp_system_info() -> str:
    """The features llama.cpp's build reports as on (``llama_print_system_info``), e.g. "AVX2 FMA F16C REPACK"."""
    try:
        from edgevlm.runtime.backends.llamacpp_amx import system_info
        info = system_info()
    except Exception as exc:  # llama-cpp-python missing or broken: say so in the results
        return f"unavailable ({type(exc).__name__})"
    on = []
    for part in info.replace("|", "\n").splitlines():
        if "=" in part:
            name, _, value = part.partition("=")
            name = name.split(":")[-1].strip()
            if value.strip() == "1" and name:
                on.append(name)
    return " ".join(on) or info.strip()


def torch_kernel() -> str:
    """PyTorch's kernel level on this CPU (ATen's dispatch: DEFAULT / AVX2 / AVX512)."""
    import torch

    return f"PyTorch eager fp32, ATen CPU capability {torch.backends.cpu.get_cpu_capability()}"


class BufferLog:
    """Collects llama.cpp's "<type> model buffer size = ..." log lines while active (one model load)."""

    def __init__(self):
        import llama_cpp as L

        self.lines: list[str] = []

        @L.llama_log_callback
        def collect(level, text, user_data):
            line = text.decode("utf-8", errors="replace")
            if "model buffer size" in line:
                self.lines.append(line.strip())

        self._callback = collect  # keep the ctypes callback alive while llama.cpp holds it
        L.llama_log_set(collect, ctypes.c_void_p(0))

    @property
    def types(self) -> list[str]:
        """Buffer type names in load order, e.g. ["CPU_Mapped", "CPU_REPACK"]."""
        out = []
        for line in self.lines:
            name = line.split("model buffer size")[0].split(":")[-1].strip()
            if name and name not in out:
                out.append(name)
        return out

    def close(self) -> None:
        import llama_cpp as L
        from llama_cpp import _logger

        L.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))

    def __enter__(self) -> "BufferLog":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def machine_kernels() -> dict[str, Any]:
    """Everything above for the suite's JSON: cpu, onnxruntime kernels, llama.cpp features."""
    info = cpu()
    return {"cpu": info, "onnxruntime": onnxruntime_kernels(info["flags"]), "llama_cpp": llamacpp_system_info()}


def onnx_bundle_kernels(manifest: dict[str, Any], flags: dict[str, bool], part: str = "decoder") -> str:
    """What a bundle part's weight matmuls run on this CPU, e.g. "MatMulNBits 4-bit b32 asym, head 8-bit,
    int8 activations: SQNBitGemm AVX2 (...)", from the manifest's quantization record (none: MLAS SGEMM)."""
    kernels = onnxruntime_kernels(flags)
    record = (manifest.get("quantization") or {}).get(part) or {}
    method = record.get("method", "none")
    if method in ("w4", "w8"):
        sym = "sym" if record.get("symmetric") else "asym"
        head = f", head {record.get('head_bits')}-bit" if part == "decoder" else ""
        return (f"MatMulNBits {record.get('bits')}-bit b{record.get('block_size')} {sym}{head}, int8 activations: "
                f"{kernels['matmul_nbits']}")
    if method == "int8":
        return f"MatMulInteger (dynamic int8): {kernels['matmul_integer']}"
    if method == "fp16":
        return "fp16 weights and compute (onnxruntime's CPU fp16 kernels)"
    return f"fp32 MatMul: {kernels['sgemm']}"
