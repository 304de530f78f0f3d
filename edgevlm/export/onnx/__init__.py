"""ONNX bundles: vision.onnx, embedding.onnx and decoder.onnx (+ .data side files for weights over 256 MiB)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...manifest import Part
from .decoder import export_decoder
from .embedding import export_embedding
from .vision import export_vision


def export_parts(job: Any) -> dict[str, Part]:
    """The format entry point (edgevlm/formats.py): an ExportJob (export/job.py) -> {part name: Part}."""
    graph_kind = job.options.get("decoder_graph", "fused")
    job.say("part 1/3: vision (encoder + projector)")
    vision = export_vision(job.ref, job.root / "vision.onnx", job.dtype)
    job.say("part 2/3: embedding")
    embedding = export_embedding(job.ref, job.root / "embedding.onnx", job.dtype)
    job.say(f"part 3/3: decoder ({graph_kind} graph)")
    decoder = export_decoder(job.ref, job.root, job.dtype, graph_kind=graph_kind)
    return {"vision": vision, "embedding": embedding, "decoder": decoder}


def export_onnx_parts(ref: Any, out_dir: str | Path, dtype: str = "fp32", decoder_graph: str = "fused") -> dict[str, Part]:
    """All three ONNX parts of a reference in one call, without the bundle around them (tests, benchmarks)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return {"vision": export_vision(ref, out_dir / "vision.onnx", dtype),
            "embedding": export_embedding(ref, out_dir / "embedding.onnx", dtype),
            "decoder": export_decoder(ref, out_dir, dtype, graph_kind=decoder_graph)}
