"""A family's vision tower + connector, described once for every exporter and for the reference.

Each family writes ONE forward (its ``vision.py``) and describes its inputs here; the exporters only
choose shapes and dtypes:
- ONNX: dynamic batch (and patch count, for patch-sequence inputs), the inputs' own dtypes;
- Core ML: batch 1, an enumerated set of patch counts (the Neural Engine compiles fixed shapes), no
  bool or int64 inputs (masks become float32 0/1, ids int32).
The ``record`` is what the manifest's ``vision`` section says about the part (how the runtime feeds
it); ``derived`` names the inputs the runtime computes with numpy (edgevlm/processing/vision_inputs.py);
``tables`` are learned arrays the runtime's feature packing uses after the graph (LLaVA-NeXT's
row-end embedding): every exporter writes them as data parts (format "npy") beside the graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

TARGETS = ("onnx", "coreml")
# Core ML dtypes for inputs whose ONNX dtype Core ML lacks.


@dataclass
class VisionInput:
    """One graph input. ``dims`` holds ints and the symbols "batch", "patches", "length" (patches * patch)
    and "tokens" (patches / patches_per_token: merged feature rows)."""

    name: str
    dims: tuple[Any, ...]
    dtype: str  # "float32" | "bool" | "int64" (ONNX); Core ML declares bool / int64 as float32 / int32 (export/coreml/vision.py)
    patches_per_token: int = 1

    def shape(self, batch: int, patches: int, patch_size: int) -> tuple[int, ...]:
        sizes = {"batch": batch, "patches": patches, "length": patches * patch_size,
                 "tokens": patches // self.patches_per_token}
        return tuple(sizes.get(d, d) for d in self.dims)


@dataclass
class VisionGraph:
    """``module(target)`` -> nn.Module whose forward takes ``inputs`` in order -> features [B, tokens, D]."""

    make_module: Callable[[str], nn.Module]
    inputs: list[VisionInput]
    record: dict[str, Any]  # manifest vision facts: kind, tokens_per_chunk, patch_size, derived-input parameters
    example: Callable[[int, int, str], tuple[torch.Tensor, ...]]  # (batch, patches, target) -> example inputs
    derived: dict[str, str] = field(default_factory=dict)  # graph input -> derived-input kind (computed by numpy)
    coreml_patches: list[int] = field(default_factory=list)  # enumerated patch counts (patch sequences only)
    tables: dict[str, Any] = field(default_factory=dict)  # name -> float32 numpy array (bundle data parts)
    # features' row count follows the chunk's patches (a patch-merging part, a packed-patch ViT)
    variable_tokens: bool = False

    def module(self, target: str) -> nn.Module:
        if target not in TARGETS:
            raise ValueError(f"vision target {target!r} is not one of {TARGETS}")
        return self.make_module(target).float().eval()

    @property
    def names(self) -> list[str]:
        return [i.name for i in self.inputs]

    @property
    def patch_sequences(self) -> bool:
        """Variable-length patch sequences (a "patches" dim) rather than fixed-size images."""
        return any("patches" in i.dims or "length" in i.dims for i in self.inputs)

    def onnx_dynamic_axes(self) -> dict[str, dict[int, str]]:
        axes = {i.name: {k: d for k, d in enumerate(i.dims) if isinstance(d, str)} for i in self.inputs}
        axes["features"] = {0: "batch", 1: "tokens"} if self.variable_tokens else {0: "batch"}
        return axes

    def tokens_per_chunk(self) -> int:
        return int(self.record["tokens_per_chunk"])


class FixedImageVision(nn.Module):
    """A fixed-size image model's vision: pixel_values [B, 3, S, S] -> features [B, tokens, D]."""

    def __init__(self, ref: Any):
        super().__init__()
        self.ref = ref

    def forward(self, pixel_values):
        return self.ref.image_features(pixel_values)  # [B, tokens, D]


def fixed_image_graph(ref: Any, image_size: int) -> VisionGraph:
    """The vision graph of a model whose ``image_features(pixel_values)`` takes square images of one size."""
    with torch.no_grad():
        tokens = ref.image_features(torch.zeros(1, 3, image_size, image_size)).shape[1]

    def example(batch: int, patches: int, target: str) -> tuple[torch.Tensor, ...]:
        return (torch.randn(batch, 3, image_size, image_size, generator=torch.Generator().manual_seed(0)),)

    return VisionGraph(lambda target: FixedImageVision(ref), [VisionInput("pixel_values", ("batch", 3, image_size,
                                                                                           image_size), "float32")],
                       {"kind": "image", "image_size": int(image_size), "tokens_per_chunk": int(tokens)}, example)
