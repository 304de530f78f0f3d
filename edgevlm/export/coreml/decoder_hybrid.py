"""A hybrid text decoder (Qwen3.5: Gated DeltaNet + gated full attention) as a stateful multifunction Core ML package.

Chosen by decoder.py for a text model whose ``layer_types`` name ``linear_attention`` layers. The same
contract as the attention-only package (decoder.py: masks over the whole cache, rotary tables, write
position and logits index as inputs), with four states instead of two:

  key_cache, value_cache  float16 [attention layers, 1, kv_heads, C, head_dim]   rows written at ``position``
  conv_state              float16 [linear layers, 1, K-1, conv_dim]              the last K-1 conv inputs
  recurrent_state         float16 [linear layers, v_heads, k_dim, v_dim]          the delta-rule state per head

and two functions sharing weights and states:

  decode   T = 1    one recurrent step per linear layer
  prefill  T = 64   ONE chunk of the chunked gated delta rule (gated_delta.py); the runtime pads a prompt
                    chunk to 64 rows, and rows after ``logits_index`` (padding) leave the states untouched.

The prefill length is fixed, not enumerated: the chunk's triangular solve is traced with its size. Core ML
states are float16 only, so the recurrent state is stored in float16 between calls (computed in the
compute precision inside a call).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..text_graph import _rotate_half
from .gated_delta import gated_delta_layer

LINEAR = "linear_attention"
CHUNK = 64  # prefill rows per call: one chunk of the gated delta rule
STATES = ("key_cache", "value_cache", "conv_state", "recurrent_state")
RECURRENT_STATES = ("conv_state", "recurrent_state")


class StatefulHybridDecoder(nn.Module):
    """transformers' Qwen3.5 text model's own submodules around four state buffers (the Core ML states)."""

    def __init__(self, language_model: nn.Module, max_context: int, cache_dtype: torch.dtype = torch.float16):
        super().__init__()
        self.model, self.lm_head, cfg = language_model.model, language_model.lm_head, language_model.config
        self.max_context = int(max_context)
        self.layer_types = list(cfg.layer_types)
        self.full = [i for i, t in enumerate(self.layer_types) if t != LINEAR]
        self.linear = [i for i, t in enumerate(self.layer_types) if t == LINEAR]
        self.num_heads, self.num_kv_heads, self.head_dim = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        rotary = self.model.rotary_emb
        self.inv_freq = rotary.inv_freq.detach().float().clone()  # [rotary_dim / 2]
        self.rope_scale = float(rotary.attention_scaling)
        self.mrope_section = list(getattr(rotary, "mrope_section", None) or [])
        la = self.model.layers[self.linear[0]].linear_attn
        c, hd = self.max_context, self.head_dim
        self.register_buffer("key_cache", torch.zeros(len(self.full), 1, self.num_kv_heads, c, hd, dtype=cache_dtype))
        self.register_buffer("value_cache", torch.zeros(len(self.full), 1, self.num_kv_heads, c, hd, dtype=cache_dtype))
        self.register_buffer("conv_state", torch.zeros(len(self.linear), 1, la.conv_kernel_size - 1, la.conv_dim,
                                                       dtype=cache_dtype))
        self.register_buffer("recurrent_state", torch.zeros(len(self.linear), la.num_v_heads, la.head_k_dim,
                                                            la.head_v_dim, dtype=cache_dtype))

    @property
    def hidden_size(self) -> int:
        return int(self.model.embed_tokens.weight.shape[1])

    def input_names(self) -> list[str]:
        return ["inputs_embeds", "attention_bias", "rope_cos", "rope_sin", "position", "logits_index"]

    def input_shapes(self, t: int) -> dict[str, list[int]]:
        rotary = 2 * len(self.inv_freq)
        return {"inputs_embeds": [1, t, self.hidden_size], "attention_bias": [1, 1, t, self.max_context],
                "rope_cos": [1, t, rotary], "rope_sin": [1, t, rotary], "position": [1], "logits_index": [1]}

    def reset(self) -> None:
        for name in STATES:
            getattr(self, name).zero_()

    # the MLState interface (read_state / write_state), for the Linux checks that drive this module as the state
    def read_state(self, name: str) -> Any:
        return getattr(self, name).detach().float().numpy().copy()

    def write_state(self, name: str, value: Any) -> None:
        getattr(self, name).copy_(torch.as_tensor(value))

    def _attention(self, slot: int, attn: nn.Module, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                   bias: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        """Gated attention of one layer: q_proj gives [query | gate] per head; partial rotary; o_proj(out * sigmoid(gate))."""
        nh, nkv, hd, t, c = self.num_heads, self.num_kv_heads, self.head_dim, x.shape[1], self.max_context
        q, gate = torch.chunk(attn.q_proj(x).view(1, t, nh, 2 * hd), 2, dim=-1)  # [1, T, nh, hd] each
        q = attn.q_norm(q).transpose(1, 2)  # [1, nh, T, hd]
        k = attn.k_norm(attn.k_proj(x).view(1, t, nkv, hd)).transpose(1, 2)  # [1, nkv, T, hd]
        v = attn.v_proj(x).view(1, t, nkv, hd).transpose(1, 2)
        rd = cos.shape[-1]  # rotary over the first rd dims of each head
        cos, sin = cos[:, None], sin[:, None]  # [1, 1, T, rd]
        q = torch.cat([q[..., :rd] * cos + _rotate_half(q[..., :rd]) * sin, q[..., rd:]], -1)
        k = torch.cat([k[..., :rd] * cos + _rotate_half(k[..., :rd]) * sin, k[..., rd:]], -1)
        begin = position[0]  # a traced value: a dynamic slice_update into the state
        self.key_cache[slot:slot + 1, :, :, begin:begin + t, :] = k[None].to(self.key_cache.dtype)
        self.value_cache[slot:slot + 1, :, :, begin:begin + t, :] = v[None].to(self.value_cache.dtype)
        keys, values = self.key_cache[slot].to(x.dtype), self.value_cache[slot].to(x.dtype)  # [1, nkv, C, hd]
        qg = q.reshape(1, nkv, -1, hd)  # query head h uses kv head h // group: [1, nkv, group*T, hd]
        scores = (torch.matmul(qg, keys.transpose(2, 3)) * attn.scaling).reshape(1, nh, t, c) + bias
        out = torch.matmul(torch.softmax(scores, dim=-1).reshape(1, nkv, -1, c), values)  # [1, nkv, group*T, hd]
        out = out.reshape(1, nh, t, hd).transpose(1, 2).reshape(1, t, nh * hd)
        return attn.o_proj(out * torch.sigmoid(gate.reshape(1, t, nh * hd)))

    def forward(self, inputs_embeds, attention_bias, rope_cos, rope_sin, position, logits_index):
        """Returns logits [1, 1, vocab] of row ``logits_index``; rows after it are padding."""
        t = inputs_embeds.shape[1]
        valid = (torch.arange(t) <= logits_index).to(inputs_embeds.dtype)  # [T]
        n_real = logits_index.long() + 1
        h = inputs_embeds  # [1, T, D]
        for i, layer in enumerate(self.model.layers):
            x = layer.input_layernorm(h)
            if self.layer_types[i] == LINEAR:
                j = self.linear.index(i)
                a, conv, state = gated_delta_layer(layer.linear_attn, x, self.conv_state[j], self.recurrent_state[j],
                                                   valid, n_real)
                self.conv_state[j:j + 1] = conv[None].to(self.conv_state.dtype)
                self.recurrent_state[j:j + 1] = state[None].to(self.recurrent_state.dtype)
            else:
                a = self._attention(self.full.index(i), layer.self_attn, x, rope_cos, rope_sin, attention_bias,
                                    position)
            h = h + a
            h = h + layer.mlp(layer.post_attention_layernorm(h))
        h = torch.index_select(h, 1, logits_index)  # [1, 1, D]
        return self.lm_head(self.model.norm(h))

    def binding(self) -> dict[str, Any]:
        """The decoder binding's hybrid entries (decoder.py writes the rest)."""
        rope = {"inputs": ["rope_cos", "rope_sin"], "inv_freq": [float(x) for x in self.inv_freq],
                "scale": self.rope_scale, "layer_kinds": ["full_attention"]}
        if self.mrope_section:
            rope["mrope_section"] = list(self.mrope_section)  # 3-stream positions: interleaved frequencies
        return {"rope": [rope], "recurrent_states": list(RECURRENT_STATES), "prefill_sizes": [CHUNK]}
