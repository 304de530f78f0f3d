"""The text decoder with M-RoPE (three position streams) as one portable ONNX graph.

Same contract as ``onnx_decoder.DecoderGraph`` (see there) except the positions:

  position_ids   int64 [3, T]   (temporal, height, width) per token; text tokens repeat one value

Rotary frequency ``j`` (of head_dim/2) turns with stream ``s(j)``: the first ``mrope_section[0]``
frequencies with the temporal stream, the next ``mrope_section[1]`` with height, the rest with width
(transformers' ``recomposition_frequencies``). In the graph that is one Gather of the position rows
by a constant frequency->stream table, then the usual angles; the runtime makes the ids as data
(``edgevlm.processing.mrope``). Only the traced ("portable") graph: the fused one's opset-23
RotaryEmbedding takes one position stream.

Written to be folded into ``onnx_decoder``: ``MropeDecoderGraph`` differs from ``DecoderGraph`` only in
``_cos_sin``, and the trace below only in the example position ids and two manifest fields
(``position_streams``, ``mrope_section``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..manifest import Part
from .onnx_common import export_module, io_spec
from .onnx_decoder import SLIDING, DecoderGraph


class MropeDecoderGraph(DecoderGraph):
    """``DecoderGraph`` whose rotary angles come from three position streams."""

    def __init__(self, language_model: torch.nn.Module, mrope_section: list[int]):
        super().__init__(language_model)
        if sum(mrope_section) * 2 != self.head_dim:
            raise ValueError(f"mrope_section {mrope_section} does not cover head_dim {self.head_dim} / 2")
        # [head_dim/2]: which position stream (0 t, 1 h, 2 w) turns each rotary frequency
        self.stream_of_freq = torch.repeat_interleave(torch.arange(3), torch.tensor(mrope_section))
        self.mrope_section = list(mrope_section)

    def _cos_sin(self, kind: str, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inv, scale = self.rope[kind]
        positions = position_ids[self.stream_of_freq].t()[None]  # [3, T] -> [1, T, hd/2]
        freqs = positions.float() * inv  # [1, T, hd/2]
        emb = torch.cat((freqs, freqs), dim=-1)  # [1, T, hd]
        return (emb.cos() * scale)[:, :, None, :], (emb.sin() * scale)[:, :, None, :]  # [1, T, 1, hd]


class _FullOnly(torch.nn.Module):
    """The graph without the sliding-mask input (all layers full attention, as in Qwen2-VL)."""

    def __init__(self, graph: MropeDecoderGraph):
        super().__init__()
        self.graph = graph

    def forward(self, inputs_embeds, position_ids, attention_bias, logits_index, *past):
        return self.graph(inputs_embeds, position_ids, attention_bias, attention_bias, logits_index, *past)


def export_mrope_decoder(ref: Any, out_dir: str | Path, mrope_section: list[int], dtype: str = "fp32",
                         max_context: int = 4096, file_name: str = "decoder.onnx") -> Part:
    """Trace ``ref.language_model`` with M-RoPE to ``out_dir/file_name``; returns its Part."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    graph = MropeDecoderGraph(ref.language_model, mrope_section).float().eval()
    if graph.has_sliding:
        raise ValueError("sliding-window layers with M-RoPE are not supported by this graph yet")
    n_layers, nkv, hd = graph.num_layers, graph.num_kv_heads, graph.head_dim
    t, p = 3, 2  # example lengths; every length is dynamic in the graph
    names_in = ["inputs_embeds", "position_ids", "attention_bias", "logits_index"]
    names_out = ["logits"]
    dyn: dict[str, dict[int, str]] = {"inputs_embeds": {1: "seq"}, "position_ids": {1: "seq"},
                                      "attention_bias": {2: "seq", 3: "total"}, "logits_index": {0: "n_logits"},
                                      "logits": {1: "n_logits"}}
    past = []
    for i in range(n_layers):
        for kind in ("key", "value"):
            names_in.append(f"past_{kind}.{i}")
            names_out.append(f"present_{kind}.{i}")
            dyn[f"past_{kind}.{i}"], dyn[f"present_{kind}.{i}"] = {1: "past"}, {1: "seq"}
            past.append(torch.zeros(1, p, nkv, hd))
    positions = torch.stack([torch.full((t,), p), torch.arange(p, p + t), torch.arange(p + 1, p + 1 + t)])  # [3, T]
    args = (torch.zeros(1, t, ref.text.hidden_size), positions, torch.zeros(1, 1, t, p + t), torch.tensor([t - 1]),
            *past)
    path = export_module(_FullOnly(graph), args, out_dir / file_name, names_in, names_out, dyn, dtype)
    inputs, outputs = io_spec(path)
    return Part(
        file=file_name, format="onnx", inputs=inputs, outputs=outputs, dtype=dtype,
        kv={"past_key": "past_key.%d", "past_value": "past_value.%d",
            "present_key": "present_key.%d", "present_value": "present_value.%d"},
        extra={"num_layers": n_layers, "num_kv_heads": nkv, "head_dim": hd, "hidden_size": ref.text.hidden_size,
               "vocab_size": int(graph.lm_head.weight.shape[0]), "kv_layout": "BSNH", "kv_shared_buffer": True,
               "kv_outputs": "new_tokens_only", "max_context": int(max_context), "position_offset": 0,
               "position_streams": 3, "mrope_section": graph.mrope_section,
               "masks": {"attention_bias": None}, "mask_value": float(torch.finfo(torch.float32).min),
               "layer_masks": ["attention_bias_sliding" if kind == SLIDING else "attention_bias"
                               for kind in graph.layer_types],
               "logits_index_input": "logits_index", "graph": "portable",
               "external_data": (file_name + ".data") if (out_dir / (file_name + ".data")).exists() else None})
