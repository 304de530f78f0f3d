"""The token embedding as ONNX: input_ids int64 [1, T] -> inputs_embeds float32 [1, T, hidden].

A separate part (not inside the decoder) so image features can be spliced in between, and so the
decoder's input is always embeddings. Includes any scale the text model applies (Gemma: sqrt(hidden)).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...manifest import Part
from .plumbing import export_module, io_spec


class Embedding(nn.Module):
    def __init__(self, ref: Any):
        super().__init__()
        self.ref = ref

    def forward(self, input_ids):
        return self.ref.embed_tokens(input_ids).float()  # [1, T, D]


def export_embedding(ref: Any, path: str | Path, dtype: str = "fp32") -> Part:
    path = Path(path)
    export_module(Embedding(ref), (torch.tensor([[1, 2, 3]]),), path, ["input_ids"], ["inputs_embeds"],
                  {"input_ids": {1: "seq"}, "inputs_embeds": {1: "seq"}}, dtype)
    inputs, outputs = io_spec(path)
    data = path.parent / (path.name + ".data")
    return Part(file=path.name, format="onnx", inputs=inputs, outputs=outputs, dtype=dtype,
                data_files=[data.name] if data.exists() else [])
