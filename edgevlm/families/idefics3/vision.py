"""The SmolVLM / Idefics3 vision forward, written once: full tiles in, projected features out.

Built from the reference's own modules (patch conv, position table, encoder, post-LayerNorm, connector
= pixel shuffle + modality projection). What differs from transformers' ``get_image_features`` is only
what a graph does not need: every tile is a full ``T x T`` square (the tiler never pads one), so the
patch mask is all ones and the bucketed position ids of a full tile are ``0 .. P-1`` (the exact integer
form of DESIGN.md's "Navit position buckets"; transformers' float32 form agrees for every published
tile: 26, 27 and 32 patches per side, checked in tests/test_idefics3_vision.py). Batch = any number of
tiles; the ONNX and Core ML parts and the reference's vision graph all run this module.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..common.vision_graph import VisionGraph, VisionInput


class Idefics3Vision(nn.Module):
    def __init__(self, hf_model: nn.Module):
        super().__init__()
        tower = hf_model.model.vision_model
        self.patch_embedding = tower.embeddings.patch_embedding
        self.position_embedding = tower.embeddings.position_embedding
        self.encoder = tower.encoder
        self.post_layernorm = tower.post_layernorm
        self.connector = hf_model.model.connector
        self.register_buffer("position_ids", torch.arange(tower.embeddings.num_patches)[None], persistent=False)  # [1, P]

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[n, 3, T, T] -> [n, tokens_per_tile, text_hidden]."""
        patches = self.patch_embedding(pixel_values).flatten(2).transpose(1, 2)  # [n, P, D]
        hidden = patches + self.position_embedding(self.position_ids)  # [n, P, D]
        hidden = self.encoder(inputs_embeds=hidden, attention_mask=None).last_hidden_state  # [n, P, D]
        return self.connector(self.post_layernorm(hidden))  # [n, P / s^2, text_hidden]


def vision_graph(ref: Any) -> VisionGraph:
    """One input, ``pixel_values`` [tiles, 3, T, T]; the manifest's vision is a fixed-size ``image`` kind."""
    vcfg = ref.hf.config.vision_config
    tile, patch = int(vcfg.image_size), int(vcfg.patch_size)
    tokens = (tile // patch) ** 2 // int(ref.hf.config.scale_factor) ** 2

    def example(batch: int, patches: int, target: str) -> tuple[torch.Tensor, ...]:
        return (torch.randn(max(batch, 1), 3, tile, tile, generator=torch.Generator().manual_seed(0)),)

    return VisionGraph(lambda target: Idefics3Vision(ref.hf), [VisionInput("pixel_values", ("batch", 3, tile, tile),
                                                                           "float32")],
                       {"kind": "image", "image_size": tile, "patch_size": patch, "tokens_per_chunk": tokens}, example)
