"""The vision part as Core ML: one chunk of preprocessed pixels -> image features [1, tokens, hidden].

The Neural Engine compiles fixed shapes, so every input has either one fixed shape or a small set of
enumerated shapes (batch is always 1; the runtime loops over chunks). The family's vision graph
(``ref.vision_graph()``) gives the one forward and its inputs:
- fixed-size images: pixel_values [1, 3, H, W] -> features [1, N, D];
- patch sequences: a chunk of h x w patches is zero-padded to the smallest enumerated patch count
  ``n >= h*w`` (``graph.coreml_patches``); masks become float32 0/1 and ids int32 (Core ML has no bool or
  int64 inputs). The mask keeps padded patches out of every attention, so padding does not change the
  features. Derived inputs (tables that depend on (h, w)) are computed by the runtime with numpy,
  exactly as for the ONNX part.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...manifest import Part
from .plumbing import DEFAULT_COMPUTE_UNITS, convert, ct, io_spec, package_manifest

# Core ML inputs take no bool or int64: the graph's ONNX dtype -> the dtype its Core ML input is declared with
COREML_DTYPES = {"bool": "float32", "int64": "int32", "float32": "float32"}
NUMPY = {"float32": np.float32, "int32": np.int32}


def coreml_inputs(graph: Any) -> list:
    """coremltools TensorTypes of the graph's inputs: fixed, or enumerated over ``graph.coreml_patches``."""
    coremltools = ct()
    patch = int(graph.record.get("patch_size", 1))
    types = []
    for spec in graph.inputs:
        dtype = NUMPY[COREML_DTYPES[spec.dtype]]
        if graph.patch_sequences:
            shapes = [spec.shape(1, n, patch) for n in graph.coreml_patches]
            shape = coremltools.EnumeratedShapes(shapes=shapes, default=shapes[-1])
        else:
            shape = spec.shape(1, 0, patch)
        types.append(coremltools.TensorType(name=spec.name, shape=shape, dtype=dtype))
    return types


def export_vision(ref: Any, root: str | Path, dtype: str = "fp16", slice_patches: list[int] | None = None,
                  package: str = "vision.mlpackage") -> Part:
    """Convert the vision tower + connector of ``ref`` to ``root/package``; returns its Part."""
    coremltools = ct()
    graph = ref.vision_graph()
    if slice_patches:
        graph.coreml_patches = sorted(int(n) for n in slice_patches)
    path = Path(root) / package
    first = graph.coreml_patches[0] if graph.patch_sequences else 0
    convert(graph.module("coreml"), graph.example(1, first, "coreml"), coreml_inputs(graph),
            [coremltools.TensorType(name="features", dtype=np.float32)], path, dtype)
    inputs_spec, outputs_spec, _ = io_spec(path)
    return Part(file=package_manifest(package), format="mlpackage", inputs=inputs_spec, outputs=outputs_spec,
                dtype=dtype, data_files=[package], binding=vision_binding(graph),
                runtime={"compute_units": DEFAULT_COMPUTE_UNITS})


def vision_binding(graph: Any) -> dict[str, Any]:
    """What the runtime needs to feed the vision package (no conversion needed to compute it)."""
    binding: dict[str, Any] = {"derived_inputs": dict(graph.derived)}
    if graph.patch_sequences:
        binding["slice_patches"] = list(graph.coreml_patches)
    return binding
