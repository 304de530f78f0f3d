"""MiniCPM-V's perceiver resampler (2.5 / 2.6 / 4.0 / 4.5 for images).

One cross-attention layer: ``query_num`` learned queries attend over the vision tokens of one chunk
(overview or slice). Keys get a 2D sin/cos position embedding of the chunk's patch grid; values do
not (the key table is edgevlm.processing.vision_inputs.sincos_2d_keys). Written from techspec §1.7 (checkpoint names ``resampler.*`` are kept so weights load as-is).
"""

from __future__ import annotations

import torch
from torch import nn


class Resampler(nn.Module):
    def __init__(self, num_queries: int, embed_dim: int, kv_dim: int, head_dim: int = 128):
        super().__init__()
        self.num_queries = num_queries
        self.embed_dim = embed_dim
        self.num_heads = max(embed_dim // head_dim, 1)
        self.query = nn.Parameter(torch.zeros(num_queries, embed_dim))
        self.kv_proj = nn.Linear(kv_dim, embed_dim, bias=False) if kv_dim != embed_dim else nn.Identity()
        self.attn = nn.MultiheadAttention(embed_dim, self.num_heads)
        self.ln_q = nn.LayerNorm(embed_dim, eps=1e-6)
        self.ln_kv = nn.LayerNorm(embed_dim, eps=1e-6)
        self.ln_post = nn.LayerNorm(embed_dim, eps=1e-6)
        self.proj = nn.Parameter(torch.zeros(embed_dim, embed_dim))  # used as x @ proj (not a Linear)

    def forward(self, vision_tokens: torch.Tensor, key_pos: torch.Tensor, key_padding: torch.Tensor) -> torch.Tensor:
        """vision_tokens [B, L, Dv], key_pos [B, L, D], key_padding [B, L] (True = padding) -> [B, Q, D]."""
        x = self.ln_kv(self.kv_proj(vision_tokens))  # [B, L, D]
        q = self.ln_q(self.query)  # [Q, D]
        batch = x.shape[0]
        q = q.unsqueeze(1).expand(-1, batch, -1)  # [Q, B, D]  (nn.MultiheadAttention is sequence-first)
        keys = (x + key_pos).transpose(0, 1)  # [L, B, D]
        values = x.transpose(0, 1)  # [L, B, D]
        out = self.attn(q, keys, values, key_padding_mask=key_padding, need_weights=False)[0]  # [Q, B, D]
        out = self.ln_post(out.transpose(0, 1))  # [B, Q, D]
        return out @ self.proj
