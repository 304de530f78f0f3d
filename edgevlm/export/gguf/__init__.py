"""The parts of a GGUF bundle: what ``edgevlm export --format gguf`` writes (called by export/__init__.py).

- ``text``: the text decoder + tokenizer + chat template as a stock llama.cpp GGUF (gguf_text.py);
- ``vision``: the vision tower + connector as ONNX (onnx_vision.py), which our runtime runs and feeds
  to llama.cpp as embedding rows: llama.cpp has no PaliGemma projector, and mtmd's API slices raw
  images itself (differently from the reference for small images), so this keeps every family exact;
- ``mmproj`` (MiniCPM-V only): vision + resampler as llama.cpp's mtmd projector, so the bundle also
  runs in stock llama.cpp (``llama-mtmd-cli -m text.gguf --mmproj mmproj.gguf``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ...manifest import Part


def _generation_config(ckpt: Path) -> dict[str, Any]:
    import json

    path = ckpt / "generation_config.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def export_gguf_parts(ref: Any, ckpt: str | Path, root: str | Path, dtype: str = "f32", max_context: int = 2048,
                      say: Callable[[str], None] = lambda message: None, mmproj_dtype: str = "f16",
                      vision_dtype: str = "fp32") -> dict[str, Part]:
    """Write text.gguf, vision.onnx and (MiniCPM-V) mmproj.gguf into ``root``; return their Parts.

    ``dtype`` (f32 | f16) applies to the text model; the ONNX vision part is fp32 unless ``vision_dtype``
    says otherwise (an fp16 vision graph was seen to crash onnxruntime 1.32 at session creation); the
    mmproj is f16 unless ``mmproj_dtype`` says otherwise (llama.cpp's usual mmproj precision).
    ``max_context`` is the KV capacity the runtime allocates (recorded by the caller in manifest.text).
    """
    from .text import export_text_gguf
    from ..onnx.vision import export_vision

    ckpt, root = Path(ckpt), Path(root)
    say(f"exporting the text model to GGUF ({ref.text.arch}, {dtype})")
    text = export_text_gguf(ref, ckpt, root / "text.gguf", dtype, _generation_config(ckpt))
    text.extra["max_context"] = int(max_context)
    say(f"exporting vision (encoder + projector) to ONNX ({vision_dtype})")
    parts = {"text": text, "vision": export_vision(ref, root / "vision.onnx", vision_dtype)}
    if hasattr(ref, "resampler") and hasattr(ref, "vpm"):
        from ...families.minicpmv.mmproj import export_mmproj

        say(f"exporting the mmproj for llama.cpp's mtmd ({mmproj_dtype})")
        parts["mmproj"] = export_mmproj(ref, root / "mmproj.gguf", mmproj_dtype)
    return parts
