"""All three ONNX parts of a reference in one call (what export orchestration and the tests use)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...manifest import Part
from .decoder import export_decoder
from .embedding import export_embedding
from .vision import export_vision


def export_onnx_parts(ref: Any, out_dir: str | Path, dtype: str = "fp32", max_context: int = 4096,
                      decoder_graph: str = "fused") -> dict[str, Part]:
    """Write vision.onnx, embedding.onnx and decoder.onnx (+ .data files for weights over 256 MiB) to ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return {"vision": export_vision(ref, out_dir / "vision.onnx", dtype),
            "embedding": export_embedding(ref, out_dir / "embedding.onnx", dtype),
            "decoder": export_decoder(ref, out_dir, dtype, max_context, graph_kind=decoder_graph)}
