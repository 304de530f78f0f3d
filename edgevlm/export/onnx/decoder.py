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
- The mask is an input, so causal, PaliGemma's prefix-LM and Gemma 3's bidirectional image blocks are
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
from torch import nn

from ...manifest import Part
from .common import export_module, io_spec

FULL, SLIDING = "full_attention", "sliding_attention"


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def finish_layer(layer: Any, residual: torch.Tensor, attention_out: torch.Tensor) -> torch.Tensor:
    """The rest of a decoder layer after attention: residual add, (sandwich) norms and the MLP."""
    if hasattr(layer, "pre_feedforward_layernorm"):  # gemma2 / gemma3 sandwich norms
        h = residual + layer.post_attention_layernorm(attention_out)
        return h + layer.post_feedforward_layernorm(layer.mlp(layer.pre_feedforward_layernorm(h)))
    h = residual + attention_out
    return h + layer.mlp(layer.post_attention_layernorm(h))


def rotated_qkv(attn: Any, x: torch.Tensor, nh: int, nkv: int, hd: int, cos: torch.Tensor,
                sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q [1, T, nh, hd], k and v [1, T, nkv, hd] of one attention layer, RoPE applied to q and k."""
    t = x.shape[1]
    q = attn.q_proj(x).view(1, t, nh, hd)
    k = attn.k_proj(x).view(1, t, nkv, hd)
    v = attn.v_proj(x).view(1, t, nkv, hd)
    if getattr(attn, "q_norm", None) is not None:  # qwen3 / gemma3: RMSNorm over head_dim
        q, k = attn.q_norm(q), attn.k_norm(k)
    return q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin, v


class DecoderGraph(nn.Module):
    """Re-wires a transformers text model's own submodules (no weight copies) into the graph above.

    Works for llama, qwen2, qwen3, gemma, gemma2 and gemma3 text models: the differences are data
    (q/k norms present or not, sandwich norms present or not, scaling, softcaps, per-layer-type rope).
    """

    def __init__(self, language_model: nn.Module):
        super().__init__()
        self.model = language_model.model  # *TextModel / *Model: .layers, .norm, .rotary_emb
        self.lm_head = language_model.lm_head
        cfg = language_model.config
        self.num_layers = len(self.model.layers)
        layer_types = list(getattr(cfg, "layer_types", None) or [FULL] * self.num_layers)
        self.layer_types = [SLIDING if t == SLIDING else FULL for t in layer_types]
        self.has_sliding = SLIDING in self.layer_types
        self.sliding_window = int(cfg.sliding_window) if self.has_sliding else None
        self.final_softcap = getattr(cfg, "final_logit_softcapping", None)
        attn0 = self.model.layers[0].self_attn
        self.head_dim = attn0.head_dim
        self.num_heads = cfg.num_attention_heads
        self.num_kv_heads = cfg.num_key_value_heads
        # Rotary inverse frequencies per layer type (Gemma 3 local layers use a different base).
        rotary = self.model.rotary_emb
        self.rope: dict[str, tuple[torch.Tensor, float]] = {}
        for kind in set(self.layer_types):
            inv = getattr(rotary, f"{kind}_inv_freq", None)
            scale = getattr(rotary, f"{kind}_attention_scaling", None)
            if inv is None:  # one rope for all layers
                inv, scale = rotary.inv_freq, getattr(rotary, "attention_scaling", 1.0)
            self.rope[kind] = (inv.detach().float().clone(), float(scale if scale is not None else 1.0))

    def _cos_sin(self, kind: str, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inv, scale = self.rope[kind]
        freqs = position_ids[..., None].float() * inv  # [1, T, hd/2]
        emb = torch.cat((freqs, freqs), dim=-1)  # [1, T, hd]
        return (emb.cos() * scale)[:, :, None, :], (emb.sin() * scale)[:, :, None, :]  # [1, T, 1, hd]

    def _attention(self, attn: nn.Module, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                   past_k: torch.Tensor, past_v: torch.Tensor, bias: torch.Tensor):
        t = x.shape[1]
        hd, nh, nkv = self.head_dim, self.num_heads, self.num_kv_heads
        group = nh // nkv
        q, k, v = rotated_qkv(attn, x, nh, nkv, hd, cos, sin)
        keys = torch.cat([past_k, k], dim=1).permute(0, 2, 3, 1)  # [1, nkv, hd, S]
        values = torch.cat([past_v, v], dim=1).transpose(1, 2)  # [1, nkv, S, hd]
        # Query head h uses kv head h // group (transformers' repeat_kv order).
        qg = q.transpose(1, 2).reshape(1, nkv, group * t, hd)  # [1, nkv, group*T, hd]
        scores = torch.matmul(qg, keys) * attn.scaling  # [1, nkv, group*T, S]
        cap = getattr(attn, "attn_logit_softcapping", None)
        if cap:
            scores = torch.tanh(scores / cap) * cap
        scores = scores.view(1, nh, t, -1) + bias  # [1, nh, T, S]
        probs = torch.softmax(scores.float(), dim=-1).to(qg.dtype)
        out = torch.matmul(probs.view(1, nkv, group * t, -1), values)  # [1, nkv, group*T, hd]
        out = out.view(1, nh, t, hd).transpose(1, 2).reshape(1, t, nh * hd)
        return attn.o_proj(out), k, v

    def forward(self, inputs_embeds, position_ids, attention_bias, attention_bias_sliding, logits_index, *past):
        h = inputs_embeds  # [1, T, D]
        rope = {kind: self._cos_sin(kind, position_ids) for kind in self.rope}
        presents = []
        for i, layer in enumerate(self.model.layers):
            kind = self.layer_types[i]
            bias = attention_bias_sliding if kind == SLIDING else attention_bias
            residual = h
            x = layer.input_layernorm(h)
            a, k, v = self._attention(layer.self_attn, x, *rope[kind], past[2 * i], past[2 * i + 1], bias)
            h = finish_layer(layer, residual, a)
            presents += [k, v]
        h = self.model.norm(h)
        h = torch.index_select(h, 1, logits_index)  # [1, K, D]
        logits = self.lm_head(h)
        if self.final_softcap:
            logits = torch.tanh(logits / self.final_softcap) * self.final_softcap
        return (logits, *presents)


def _position_offset(ref: Any) -> int:
    """PaliGemma numbers positions from 1 (transformers: "Paligemma positions are 1-indexed")."""
    return 1 if getattr(ref, "family", "") == "paligemma" else 0


GRAPHS = ("fused", "portable")


def export_decoder(ref: Any, out_dir: str | Path, dtype: str = "fp32", max_context: int = 4096,
                   file_name: str = "decoder.onnx", graph_kind: str = "fused") -> Part:
    """Export ``ref.language_model`` as ``out_dir/decoder.onnx`` (+ ``.data`` for weights over 256 MiB) and describe it.

    ``graph_kind``: "fused" (default) writes the op-by-op graph of ``onnx_decoder_fused`` (opset 23
    Attention/RotaryEmbedding/RMSNormalization + onnxruntime's fused norms: onnxruntime >= 1.23, the
    fast one on CPU); "portable" traces ``DecoderGraph`` into elementary opset-18 ops, for older
    runtimes and for NPU execution providers that only take standard elementary ops.
    """
    if graph_kind not in GRAPHS:
        raise ValueError(f"decoder graph {graph_kind!r} is not one of {GRAPHS}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    graph = DecoderGraph(ref.language_model).float().eval()
    spec = ref.text
    n_layers, nkv, hd = graph.num_layers, graph.num_kv_heads, graph.head_dim
    names_in = ["inputs_embeds", "position_ids", "attention_bias", "attention_bias_sliding", "logits_index"]
    if not graph.has_sliding:
        # An unused input would be dropped by the exporter; drop it ourselves so names stay stable.
        names_in.remove("attention_bias_sliding")
    names_in += [f"past_{kind}.{i}" for i in range(n_layers) for kind in ("key", "value")]
    if graph_kind == "fused":
        from .decoder_fused import write_fused_decoder

        path = write_fused_decoder(graph, out_dir / file_name, names_in, dtype)
    else:
        path = _trace(graph, out_dir / file_name, names_in, spec.hidden_size, dtype)
    inputs, outputs = io_spec(path)
    masks = {"attention_bias": None}
    if graph.has_sliding:
        masks["attention_bias_sliding"] = graph.sliding_window
    return Part(
        file=file_name, format="onnx", inputs=inputs, outputs=outputs, dtype=dtype,
        kv={"past_key": "past_key.%d", "past_value": "past_value.%d",
            "present_key": "present_key.%d", "present_value": "present_value.%d"},
        extra={
            "num_layers": n_layers, "num_kv_heads": nkv, "head_dim": hd, "hidden_size": spec.hidden_size,
            "vocab_size": int(graph.lm_head.weight.shape[0]),
            "kv_layout": "BSNH", "kv_shared_buffer": True, "kv_outputs": "new_tokens_only",
            "max_context": int(max_context), "position_offset": _position_offset(ref),
            # mask input name -> sliding window (None = full attention); the runtime builds each from
            # block_ids: allowed(q, k) = (k <= q or same block) and (window is None or q - k < window).
            "masks": masks, "mask_value": float(torch.finfo(torch.float32).min),
            # The mask each layer reads: a sliding layer's past input is bound to its window's rows only.
            "layer_masks": ["attention_bias_sliding" if t == SLIDING else "attention_bias" for t in graph.layer_types],
            "logits_index_input": "logits_index", "graph": graph_kind,
            "external_data": (file_name + ".data") if (out_dir / (file_name + ".data")).exists() else None,
        })


class _NoSliding(nn.Module):
    """Same graph without the sliding-mask input (models whose layers are all full attention)."""

    def __init__(self, graph: DecoderGraph):
        super().__init__()
        self.graph = graph

    def forward(self, inputs_embeds, position_ids, attention_bias, logits_index, *past):
        return self.graph(inputs_embeds, position_ids, attention_bias, attention_bias, logits_index, *past)


def _trace(graph: DecoderGraph, path: Path, names_in: list[str], hidden: int, dtype: str) -> Path:
    """The portable graph: ``DecoderGraph`` traced by torch.onnx into elementary opset-18 ops."""
    t, p = 3, 2  # example lengths for tracing; every length is dynamic in the graph
    dyn: dict[str, dict[int, str]] = {
        "inputs_embeds": {1: "seq"}, "position_ids": {1: "seq"}, "attention_bias": {2: "seq", 3: "total"},
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
    args = (torch.zeros(1, t, hidden), torch.arange(p, p + t)[None], bias, bias.clone(), torch.tensor([t - 1]), *past)
    if not graph.has_sliding:
        dyn.pop("attention_bias_sliding")
        return export_module(_NoSliding(graph), args[:3] + args[4:], path, names_in, names_out, dyn, dtype)
    return export_module(graph, args, path, names_in, names_out, dyn, dtype)
