"""The text decoder as one ONNX graph: inputs_embeds + positions + additive mask + past KV -> logits + new KV.

Graph contract (all float32 at the boundary, batch 1):
  inputs_embeds        [1, T, hidden]
  position_ids         int64 [1, T]         absolute RoPE positions (n_past + arange(T) + position_offset)
  attention_bias       [1, 1, T, P+T]       additive mask (0 / -large) for full-attention layers
  attention_bias_sliding [1, 1, T, P+T]     same for sliding-window layers (only if the model has them)
  logits_index         int64 [K]            rows of the T positions whose logits are computed
  past_key.N / past_value.N  [1, P, kv_heads, head_dim]   the cache so far, sequence-major ("BSNH")
outputs:
  logits               [1, K, vocab]
  present_key.N / present_value.N [1, T, kv_heads, head_dim]   keys/values of the T new tokens only

Why this shape (see docs/decoder_graph.md for the measurements):
- The mask is an input, so causal, prefix-LM and bidirectional-image-block attention are
  one graph; the runtime builds the mask from ``block_ids`` with numpy. Fused GroupQueryAttention is
  always causal on CPU and cannot express a bidirectional prefill.
- The cache is sequence-major and the graph returns only the new rows, so the runtime keeps ONE
  preallocated buffer per layer: past is bound as a zero-copy view of rows [0, P), and the new rows
  are written by onnxruntime straight into rows [P, P+T) through IO binding. Nothing grows or is
  reallocated per token.
- ``logits_index`` keeps prefill from computing T x vocab logits when only the last row is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ...manifest import Part
from ...errors import CheckpointError
from ..text_graph import SLIDING, DecoderGraph
from .plumbing import io_spec

GRAPHS = ("fused", "portable")
LINEAR = "linear_attention"  # a recurrent (Gated DeltaNet) layer: conv + recurrent states instead of KV rows


def export_decoder(ref: Any, out_dir: str | Path, dtype: str = "fp32", file_name: str = "decoder.onnx",
                   graph_kind: str = "fused") -> Part:
    """Export ``ref.language_model`` as ``out_dir/decoder.onnx`` (+ ``.data`` for weights over 256 MiB) and describe it.

    ``graph_kind``: "fused" (default) writes the op-by-op graph of decoder_fused.py (opset 23
    Attention/RotaryEmbedding/RMSNormalization + onnxruntime's fused norms: onnxruntime >= 1.23, the
    fast one on CPU); "portable" traces ``DecoderGraph`` into elementary opset-18 ops, for older
    runtimes and for NPU execution providers that only take standard elementary ops.
    """
    if graph_kind not in GRAPHS:
        raise ValueError(f"decoder graph {graph_kind!r} is not one of {GRAPHS}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if LINEAR in (ref.text.extra.get("layer_types") or ()):
        return export_hybrid(ref, out_dir, dtype, file_name, graph_kind)
    graph = DecoderGraph(ref.language_model).float().eval()
    names_in = ["inputs_embeds", "position_ids", "attention_bias", "attention_bias_sliding", "logits_index"]
    if not graph.has_sliding:
        # An unused input would be dropped by the exporter; drop it ourselves so names stay stable.
        names_in.remove("attention_bias_sliding")
    names_in += [f"past_{kind}.{i}" for i in range(graph.num_layers) for kind in ("key", "value")]
    if graph_kind == "fused":
        from .decoder_fused import write_fused_decoder

        path = write_fused_decoder(graph, out_dir / file_name, names_in, dtype)
    else:
        from .decoder_portable import trace_decoder

        path = trace_decoder(graph, out_dir / file_name, names_in, ref.text.hidden_size, dtype)
    inputs, outputs = io_spec(path)
    masks = {"attention_bias": None}
    if graph.has_sliding:
        masks["attention_bias_sliding"] = graph.sliding_window
    data = out_dir / (file_name + ".data")
    return Part(
        file=file_name, format="onnx", inputs=inputs, outputs=outputs, dtype=dtype,
        data_files=[data.name] if data.exists() else [],
        binding={
            "kv": {"past_key": "past_key.%d", "past_value": "past_value.%d",
                   "present_key": "present_key.%d", "present_value": "present_value.%d"},
            # mask input name -> sliding window (None = full attention); the runtime builds each from
            # block_ids: allowed(q, k) = (k <= q or same block) and (window is None or q - k < window).
            "masks": masks, "mask_value": float(torch.finfo(torch.float32).min),
            # The mask each layer reads: a sliding layer's past input is bound to its window's rows only.
            "layer_masks": ["attention_bias_sliding" if t == SLIDING else "attention_bias" for t in graph.layer_types],
            "logits_index": "logits_index"},
        runtime={"graph": graph_kind},
        # The cache contract of this graph: sequence-major rows, one shared buffer, new rows only out.
        info={"kv_layout": "BSNH", "kv_outputs": "new_tokens_only"})


def export_hybrid(ref: Any, out_dir: Path, dtype: str, file_name: str, graph_kind: str) -> Part:
    """A text model with linear-attention layers (onnx/decoder_hybrid.py): KV rows for its full-attention
    layers, conv + recurrent states for the others; the binding names both, per layer kind."""
    from .decoder_hybrid import FULL, HybridTextGraph, write_hybrid_decoder

    if graph_kind != "fused":
        raise CheckpointError("this text model has linear-attention (recurrent) layers, which only the fused decoder "
                              "graph writes; export with --decoder-graph fused (the default).")
    positions = "mrope" if int(getattr(ref, "position_streams", 1)) == 3 else "1d"
    graph = HybridTextGraph(ref.language_model, positions)
    path = out_dir / file_name
    states = write_hybrid_decoder(graph, path, dtype)
    inputs, outputs = io_spec(path)
    data = out_dir / (file_name + ".data")
    return Part(
        file=file_name, format="onnx", inputs=inputs, outputs=outputs, dtype=dtype,
        data_files=[data.name] if data.exists() else [],
        binding={
            "kv": {"past_key": "past_key.%d", "past_value": "past_value.%d",
                   "present_key": "present_key.%d", "present_value": "present_value.%d"},
            # per linear-attention layer: graph names of each state and its shape; the output is the whole
            # new state (the runtime binds two buffers per state and swaps them: runtime/backends/ort_states.py)
            "states": states,
            "masks": {"attention_bias": None}, "mask_value": float(torch.finfo(torch.float32).min),
            "layer_masks": ["attention_bias" if t == FULL else None for t in graph.layer_types],
            "logits_index": "logits_index"},
        runtime={"graph": "fused"},
        info={"kv_layout": "BSNH", "kv_outputs": "new_tokens_only", "state_outputs": "whole_state",
              "prefill": "chunked gated delta rule (chunks of 64 in a Loop); one recurrent step when T == 1",
              "positions": positions})
