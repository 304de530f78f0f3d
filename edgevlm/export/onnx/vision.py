"""The vision part as ONNX: preprocessed pixels -> image features [n_chunks, tokens_per_chunk, hidden].

The family's vision graph (``ref.vision_graph()``, the contract's VisionGraph) says what the
inputs are; this traces its one forward with dynamic batch (and patch count, for patch sequences),
with two chunks of different sizes so padding and masks are exercised. Derived inputs (tables the
runtime computes with numpy) are named in the Part's binding.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...manifest import Part
from .plumbing import export_module, io_spec


def export_vision(ref: Any, path: str | Path, dtype: str = "fp32") -> Part:
    """Export the vision tower + connector of ``ref`` to ``path``; returns its Part (file = path's name)."""
    path = Path(path)
    graph = ref.vision_graph()
    example = graph.example(2, 8, "onnx") if graph.patch_sequences else graph.example(1, 0, "onnx")
    export_module(graph.module("onnx"), example, path, graph.names, ["features"], graph.onnx_dynamic_axes(), dtype)
    inputs, outputs = io_spec(path)
    data = path.parent / (path.name + ".data")
    runtime = {"ort_graph_optimization": "extended"} if dtype == "fp16" else {}  # ORT 1.32 segfaults on fp16 SigLIP at "all"
    return Part(file=path.name, format="onnx", inputs=inputs, outputs=outputs, dtype=dtype,
                data_files=[data.name] if data.exists() else [], binding={"derived_inputs": dict(graph.derived)},
                runtime=runtime)
