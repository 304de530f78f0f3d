"""Quantizing an ONNX bundle part by part (the format's quantizer in edgevlm/formats.py)."""

from __future__ import annotations

from typing import Any

from .recipes import plan


def quantize_bundle(job: Any) -> dict[str, Any]:
    """Each part with the method the recipe (and overrides) give it; returns part -> record."""
    from .onnx import quantize_onnx_part

    options = job.options
    methods = plan(job.recipe, list(job.manifest.parts), job.overrides)
    calibration = options.get("calibration")
    if calibration is not None:
        from .qdq import Calibration

        calibration = Calibration(job.src, calibration)
    records = {}
    for index, (name, part) in enumerate(job.manifest.parts.items(), 1):
        job.say(f"part {index}/{len(methods)}: {name} ({part.file}) to {methods[name]}")
        records[name] = quantize_onnx_part(job.src / part.file, job.dst / part.file, methods[name],
                                           options.get("block_size", 32), options.get("symmetric", False),
                                           calibration, name, head_bits=options.get("head_bits", 8))
        part.dtype = methods[name] if methods[name] != "none" else part.dtype
        data = job.dst / (part.file + ".data")  # a quantized part may fit in one file where its source did not
        part.data_files = [data.name] if data.exists() else []
        if methods[name] == "fp16":
            part.runtime["ort_graph_optimization"] = "extended"  # see runtime/backends/onnxruntime.py
    return records
