"""The text decoder as one torch module over a transformers text model's own submodules (no weight copies).

``DecoderGraph`` is what every decoder exporter starts from: ONNX traces it (onnx/decoder_portable.py)
or reads its modules op by op (onnx/decoder_fused.py); Core ML wraps it with a stateful cache
(coreml/decoder.py). Its forward has the ONNX graph contract (onnx/decoder.py): inputs_embeds +
positions + additive masks + past KV -> logits + the new rows' KV.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..processing.mrope import stream_of_frequency

FULL, SLIDING = "full_attention", "sliding_attention"


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def finish_layer(layer: Any, residual: torch.Tensor, attention_out: torch.Tensor) -> torch.Tensor:
    """The rest of a decoder layer after attention: residual add, (sandwich) norms and the MLP."""
    if hasattr(layer, "pre_feedforward_layernorm"):  # sandwich norms (Gemma 2 and 3 text models)
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
    if getattr(attn, "q_norm", None) is not None:  # Qwen 3 / Gemma 3 text: RMSNorm over head_dim
        q, k = attn.q_norm(q), attn.k_norm(k)
    return q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin, v


class DecoderGraph(nn.Module):
    """Re-wires a transformers text model's own submodules (no weight copies) into the graph above.

    Works for every text architecture in text_archs.py: the differences are data
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
        # M-RoPE (three position streams, e.g. Qwen2-VL): frequency j turns with stream stream_of_freq[j];
        # position_ids is then [3, 1, T] instead of [1, T]. Read from the rotary module's own sections.
        section = getattr(rotary, "mrope_section", None)
        rope_params = getattr(cfg, "rope_parameters", None) or {}
        self.position_streams = 3 if section else 1
        self.stream_of_freq = (torch.from_numpy(stream_of_frequency(section, bool(rope_params.get("mrope_interleaved"))))
                               if section else None)
        self.rope: dict[str, tuple[torch.Tensor, float]] = {}
        for kind in set(self.layer_types):
            inv = getattr(rotary, f"{kind}_inv_freq", None)
            scale = getattr(rotary, f"{kind}_attention_scaling", None)
            if inv is None:  # one rope for all layers
                inv, scale = rotary.inv_freq, getattr(rotary, "attention_scaling", 1.0)
            self.rope[kind] = (inv.detach().float().clone(), float(scale if scale is not None else 1.0))

    def _cos_sin(self, kind: str, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inv, scale = self.rope[kind]
        if self.stream_of_freq is not None:  # [3, 1, T] -> each frequency's stream: [1, T, hd/2]
            freqs = position_ids[self.stream_of_freq].permute(1, 2, 0).float() * inv
        else:
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

    def example_positions(self, start: int, length: int) -> torch.Tensor:
        """Position ids for tracing: [1, T], or [3, 1, T] with distinct streams (so none is folded away)."""
        positions = torch.arange(start, start + length)[None]  # [1, T]
        if self.position_streams == 1:
            return positions
        return torch.stack([positions, positions + 1, positions + 2])  # [3, 1, T]

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
