"""The parts of a GGUF bundle: what ``edgevlm export --format gguf`` writes (called by export/__init__.py).

- ``text``: the text decoder + tokenizer + chat template as a stock llama.cpp GGUF (text.py);
- ``vision``: the vision tower + connector as ONNX (../onnx/vision.py), which our runtime runs and feeds
  to llama.cpp as embedding rows: some families have no mtmd projector, and mtmd's API slices raw
  images itself (differently from the reference for small images), so this keeps every family exact;
- ``mmproj`` (where the family has one: ``Family.write_mmproj``): the vision part as llama.cpp's mtmd
  projector, so the bundle also runs in stock llama.cpp (``llama-mtmd-cli -m text.gguf --mmproj mmproj.gguf``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...manifest import Part


def _generation_config(ckpt: Path) -> dict[str, Any]:
    import json

    path = ckpt / "generation_config.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def export_parts(job: Any) -> dict[str, Part]:
    """The format entry point (edgevlm/formats.py): text.gguf, vision.onnx and, where llama.cpp has a
    projector for the family, mmproj.gguf.

    ``job.dtype`` (fp32 | fp16) applies to the text model; the ONNX vision part is fp32 (an fp16 vision
    graph was seen to crash onnxruntime 1.32 at session creation); the mmproj is fp16 unless the
    ``mmproj_dtype`` option says otherwise (llama.cpp's usual mmproj precision).
    """
    from ...errors import CheckpointError
    from ..onnx.vision import export_vision
    from .text import export_text_gguf

    ref, root, say = job.ref, Path(job.root), job.say
    if int(getattr(ref, "position_streams", 1)) > 1 and not getattr(ref, "text_streams_equal", False):
        # llama.cpp takes one position per text token, and its KV mask orders tokens by position: several
        # streams placed freely per token (a canvas M-RoPE's markers) cannot be fed to it as they are.
        # Grid M-RoPE (text tokens equal in every stream, image rows as embeddings) can: llamacpp_batch.py.
        raise CheckpointError("this model numbers its tokens with several position streams (M-RoPE), which the GGUF "
                              "export does not feed to llama.cpp yet; export to ONNX (--format onnx) or Core ML.")
    say(f"exporting the text model to GGUF ({ref.text.arch}, {job.dtype})")
    parts = {"text": export_text_gguf(ref, job.checkpoint, root / "text.gguf", job.dtype,
                                      _generation_config(Path(job.checkpoint)))}
    say("exporting vision (encoder + projector) to ONNX (fp32)")
    parts["vision"] = export_vision(ref, root / "vision.onnx", "fp32")
    mmproj_dtype = job.options.get("mmproj_dtype", "fp16")
    mmproj = job.family.write_mmproj(ref, root / "mmproj.gguf", mmproj_dtype)
    if mmproj is not None:
        say(f"wrote the mmproj for llama.cpp's mtmd ({mmproj_dtype})")
        parts["mmproj"] = mmproj
    return parts
