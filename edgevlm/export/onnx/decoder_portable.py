"""The portable decoder graph: ``DecoderGraph`` traced by torch.onnx into elementary opset-18 ops.

For older onnxruntime versions and for NPU execution providers that place only elementary ops
(NNAPI, QNN, the Core ML EP). Same contract as the fused graph (onnx/decoder.py).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..text_graph import DecoderGraph
from .plumbing import export_module


class _NoSliding(nn.Module):
    """Same graph without the sliding-mask input (models whose layers are all full attention)."""

    def __init__(self, graph: DecoderGraph):
        super().__init__()
        self.graph = graph

    def forward(self, inputs_embeds, position_ids, attention_bias, logits_index, *past):
        return self.graph(inputs_embeds, position_ids, attention_bias, attention_bias, logits_index, *past)


def trace_decoder(graph: DecoderGraph, path: Path, names_in: list[str], hidden: int, dtype: str) -> Path:
    """The portable graph: ``DecoderGraph`` traced by torch.onnx into elementary opset-18 ops."""
    t, p = 3, 2  # example lengths for tracing; every length is dynamic in the graph
    seq_axis = 1 if graph.position_streams == 1 else 2  # position_ids [1, T] or [3, 1, T]
    dyn: dict[str, dict[int, str]] = {
        "inputs_embeds": {1: "seq"}, "position_ids": {seq_axis: "seq"}, "attention_bias": {2: "seq", 3: "total"},
        "attention_bias_sliding": {2: "seq", 3: "total"}, "logits_index": {0: "n_logits"},
        "logits": {1: "n_logits"}}
    names_out = ["logits"]
    past = []
    for i in range(graph.num_layers):
        for kind in ("key", "value"):
            past.append(torch.zeros(1, p, graph.num_kv_heads, graph.head_dim))
            names_out.append(f"present_{kind}.{i}")
            dyn[f"past_{kind}.{i}"] = {1: "past"}
            dyn[f"present_{kind}.{i}"] = {1: "seq"}
    bias = torch.zeros(1, 1, t, p + t)
    args = (torch.zeros(1, t, hidden), graph.example_positions(p, t), bias, bias.clone(), torch.tensor([t - 1]), *past)
    if not graph.has_sliding:
        dyn.pop("attention_bias_sliding")
        return export_module(_NoSliding(graph), args[:3] + args[4:], path, names_in, names_out, dyn, dtype)
    return export_module(graph, args, path, names_in, names_out, dyn, dtype)
