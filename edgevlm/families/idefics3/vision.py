"""The SmolVLM / Idefics3 vision part for export: full tiles in, projected features out.

Built from the reference's own modules (patch conv, position table, encoder, post-LayerNorm,
connector = pixel shuffle + projection), so there is one implementation of each. What differs from
``get_image_features`` is only what the exported graph does not need: every tile is a full
``T x T`` square (the tiler never pads one), so the patch mask is all ones and the bucketised
position ids reduce to ``0 .. n_patches-1`` (checked against transformers' embeddings in the tests)
and the attention needs no mask. Batch = any number of tiles (dynamic axis 0).
"""

from __future__ import annotations

import torch
from torch import nn


class Idefics3Vision(nn.Module):
    def __init__(self, hf_model: nn.Module):
        super().__init__()
        tower = hf_model.model.vision_model
        self.patch_embedding = tower.embeddings.patch_embedding
        self.position_embedding = tower.embeddings.position_embedding
        self.encoder = tower.encoder
        self.post_layernorm = tower.post_layernorm
        self.connector = hf_model.model.connector
        n_patches = tower.embeddings.num_patches
        self.register_buffer("position_ids", torch.arange(n_patches)[None], persistent=False)  # [1, P]

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[n, 3, T, T] -> [n, tokens_per_tile, text_hidden]."""
        patches = self.patch_embedding(pixel_values).flatten(2).transpose(1, 2)  # [n, P, D]
        hidden = patches + self.position_embedding(self.position_ids)  # [n, P, D]
        hidden = self.encoder(inputs_embeds=hidden, attention_mask=None).last_hidden_state  # [n, P, D]
        return self.connector(self.post_layernorm(hidden))  # [n, P / s^2, text_hidden]
