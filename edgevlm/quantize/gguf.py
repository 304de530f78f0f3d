"""``edgevlm quantize`` for GGUF bundles: llama.cpp's own quantizer (``llama_model_quantize``) on the text model.

The text GGUF is re-quantized exactly as ``llama-quantize`` would (same k-quant mixes, e.g. Q4_K_M keeps
some attn_v / ffn_down tensors at Q6_K). The mmproj (MiniCPM-V) stays f16 unless ``mmproj="q8_0"``:
llama_model_quantize only handles text architectures, so the projector is re-written with gguf-py's
Q8_0 quantizer (2-D weights only; clip.cpp loads Q8_0 mmprojs). Everything else is copied, and the
manifest records what was done; edgevlm.quantize writes the new bundle atomically.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any, Callable

from ..errors import BundleError, EdgeVLMError
from ..formats import DTYPE_ALIASES
from ..manifest import Manifest

# name → llama_ftype value (llama.h); resolved lazily so importing this module needs no llama_cpp.
GGUF_TYPES = ("Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K",
              "Q3_K_M", "Q2_K", "F16")
MMPROJ_TYPES = ("fp16", "q8_0")


def _ftype(name: str) -> int:
    import llama_cpp as L

    key = name.upper()
    if key not in GGUF_TYPES:
        raise EdgeVLMError(f"GGUF quantization {name!r} is not available; choose one of {', '.join(GGUF_TYPES)}.")
    return int(getattr(L, "LLAMA_FTYPE_MOSTLY_" + key))


def quantize_gguf(src: str | Path, dst: str | Path, method: str, threads: int = 0) -> dict[str, Any]:
    """Quantize one text GGUF with llama.cpp; returns {"method", "type", "bytes_before", "bytes_after", "seconds"}."""
    import ctypes

    import llama_cpp as L

    params = L.llama_model_quantize_default_params()
    params.ftype = _ftype(method)
    params.nthread = threads
    started = time.perf_counter()
    code = L.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if code != 0:
        raise EdgeVLMError(f"llama.cpp could not quantize {src} to {method} (code {code}); is it a text-model GGUF "
                           "written by edgevlm export --format gguf?")
    return {"method": "llama_model_quantize", "type": method.upper(), "bytes_before": Path(src).stat().st_size,
            "bytes_after": Path(dst).stat().st_size, "seconds": round(time.perf_counter() - started, 2)}


def quantize_mmproj_q8_0(src: str | Path, dst: str | Path) -> dict[str, Any]:
    """Re-write an mmproj GGUF with its 2-D ``.weight`` tensors in Q8_0 (gguf-py quantizer); keys copied."""
    import gguf
    import numpy as np

    reader = gguf.GGUFReader(str(src))
    arch = reader.fields["general.architecture"].contents()
    writer = gguf.GGUFWriter(str(dst), arch)
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        if key == "general.file_type":
            writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
            continue
        value = field.contents()
        vtype = field.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            writer.add_key_value(key, value, vtype, sub_type=field.types[-1])
        else:
            writer.add_key_value(key, value, vtype)
    Q8 = gguf.GGMLQuantizationType.Q8_0
    for tensor in reader.tensors:
        shape = [int(d) for d in reversed(tensor.shape)]  # numpy order
        data = np.asarray(tensor.data)
        is_float = tensor.tensor_type in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16)
        if is_float and len(shape) == 2 and tensor.name.endswith(".weight") and shape[-1] % 32 == 0 \
                and "position_embd" not in tensor.name:
            q = gguf.quants.quantize(data.astype(np.float32).reshape(shape), Q8)
            writer.add_tensor(tensor.name, q, raw_shape=q.shape, raw_dtype=Q8)
        else:
            writer.add_tensor(tensor.name, data.reshape(shape) if is_float else data,
                              raw_dtype=None if is_float else tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {"method": "gguf-py", "type": "Q8_0", "bytes_before": Path(src).stat().st_size,
            "bytes_after": Path(dst).stat().st_size}


def quantize_bundle(job: Any) -> dict[str, Any]:
    """The format's quantizer (edgevlm/formats.py): a QuantizeJob (quantize/job.py) -> part -> record."""
    return quantize_gguf_bundle(job.src, job.dst, job.manifest, job.recipe, job.overrides, job.say)


def quantize_gguf_bundle(src: str | Path, dst: str | Path, manifest: Manifest, recipe: str,
                         overrides: dict[str, str] | None = None,
                         say: Callable[[str], None] = lambda message: None, threads: int = 0) -> dict[str, Any]:
    """Quantize a GGUF bundle's parts from ``src`` into the directory ``dst`` (edgevlm.quantize orchestrates).

    ``recipe`` is the text model's llama.cpp type (q8_0, q4_0, q4_k_m, q5_k_m, ...); ``overrides`` may set
    ``{"mmproj": "q8_0"}`` (default: the mmproj stays as exported, fp16) or ``{"text": type}``. Parts not
    quantized (vision.onnx, mmproj) are copied. Part dtypes in ``manifest`` are updated in place; returns
    one record per part for ``manifest.quantization``.
    """
    src, dst = Path(src), Path(dst)
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - {"text", "mmproj"})
    if unknown:
        raise EdgeVLMError(f"GGUF bundles take per-part overrides for text and mmproj only (--part text=q8_0, "
                           f"--part mmproj=q8_0), not {', '.join(unknown)}.")
    if manifest.format != "gguf" or "text" not in manifest.parts:
        raise BundleError(f"{src} is a {manifest.format} bundle without a GGUF text part; GGUF quantization "
                          "(q4_k_m, ...) applies to bundles exported with --format gguf.")
    method = overrides.get("text", recipe)
    mmproj = overrides.get("mmproj", "fp16").lower()
    mmproj = DTYPE_ALIASES.get(mmproj, mmproj)
    if mmproj not in MMPROJ_TYPES:
        raise EdgeVLMError(f"mmproj quantization {mmproj!r} is not available; choose one of {', '.join(MMPROJ_TYPES)}.")
    text = manifest.parts["text"]
    if text.dtype not in ("fp32", "fp16"):
        raise BundleError(f"{src}: the text model is already quantized ({text.dtype}); quantize the f32/f16 export "
                          "instead (re-quantizing compounds the error).")
    _ftype(method)  # fail before writing anything
    records: dict[str, Any] = {}
    for name, part in manifest.parts.items():
        target = dst / part.file
        target.parent.mkdir(parents=True, exist_ok=True)
        if name == "text":
            say(f"quantizing text ({part.file}) to {method.upper()} with llama.cpp")
            records[name] = {**quantize_gguf(src / part.file, target, method, threads), "source_dtype": part.dtype}
            part.dtype = method.lower()
        elif name == "mmproj" and mmproj == "q8_0":
            say(f"quantizing mmproj ({part.file}) to Q8_0")
            records[name] = quantize_mmproj_q8_0(src / part.file, target)
            part.dtype = "q8_0"
        else:
            shutil.copy(src / part.file, target)
            for data in part.data_files:
                shutil.copy(src / data, dst / data)
            records[name] = {"method": "none", "dtype": part.dtype}
    return records
