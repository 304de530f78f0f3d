"""The token embedding as a small Core ML package: input_ids int32 [1, T] -> inputs_embeds float32 [1, T, hidden].

A separate part (as for ONNX) so image features can be spliced in between and the decoder's input is
always embeddings. Includes any scale the text model applies (Gemma: sqrt(hidden)). A package rather
than a numpy table so ``edgevlm quantize`` can compress it like the other parts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ...manifest import Part
from .plumbing import DEFAULT_COMPUTE_UNITS, convert, ct, io_spec, package_manifest


class EmbeddingCoreML(nn.Module):
    def __init__(self, ref: Any):
        super().__init__()
        self.ref = ref

    def forward(self, input_ids):
        return self.ref.embed_tokens(input_ids.long()).float()  # [1, T, D], Gemma's sqrt(hidden) scale included


def export_embedding(ref: Any, root: str | Path, dtype: str = "fp16", max_context: int = 2048,
                     package: str = "embedding.mlpackage") -> Part:
    """The token embedding as a small package: input_ids int32 [1, T] -> inputs_embeds float32 [1, T, hidden]."""
    coremltools = ct()
    path = Path(root) / package
    seq = coremltools.RangeDim(lower_bound=1, upper_bound=max_context, default=1)
    convert(EmbeddingCoreML(ref), (torch.tensor([[1, 2, 3]], dtype=torch.int32),),
            [coremltools.TensorType(name="input_ids", shape=(1, seq), dtype=np.int32)],
            [coremltools.TensorType(name="inputs_embeds", dtype=np.float32)], path, dtype)
    inputs_spec, outputs_spec, _ = io_spec(path)
    return Part(file=package_manifest(package), format="mlpackage", inputs=inputs_spec, outputs=outputs_spec,
                dtype=dtype, data_files=[package], runtime={"compute_units": DEFAULT_COMPUTE_UNITS})
