"""The InternVL vision forward, written once: tiles in, projected features out.

Built from the reference's own modules (patch conv, CLS token, position table, encoder, final norm,
pixel shuffle, projector). What differs from transformers' ``get_image_features``: tiles are always
the tower's native size, so the position table is used as stored (transformers interpolates it
bicubically whenever it is traced: an identity at the native size, but an avoidable op in a graph),
and only ``vision_feature_layer = -1`` with the ``default`` strategy (drop CLS) is taken, which is what
every published InternVL 2.5 / 3 uses. Batch = any number of tiles; ONNX, Core ML and the reference's
vision graph all run this module.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...errors import CheckpointError
from ..common.vision_graph import VisionGraph, VisionInput


def _first(value: Any) -> int:
    return int(value[0] if isinstance(value, (list, tuple)) else value)


class InternVLVision(nn.Module):
    def __init__(self, hf_model: nn.Module):
        super().__init__()
        cfg = hf_model.config
        if cfg.vision_feature_layer != -1 or cfg.vision_feature_select_strategy != "default":
            raise CheckpointError(f"InternVL vision_feature_layer {cfg.vision_feature_layer} / strategy "
                                  f"{cfg.vision_feature_select_strategy!r} is not supported (only -1 / 'default', "
                                  "what the published InternVL 2.5 / 3 use).")
        tower = hf_model.model.vision_tower
        self.embeddings = tower.embeddings
        self.encoder = tower.encoder
        self.layernorm = tower.layernorm
        self.pixel_shuffle = hf_model.model.pixel_shuffle
        self.projector = hf_model.model.multi_modal_projector
        self.downsample = cfg.downsample_ratio
        self.side = _first(cfg.vision_config.image_size) // _first(cfg.vision_config.patch_size)  # patches per side

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[n, 3, T, T] -> [n, tokens_per_tile, text_hidden]."""
        emb = self.embeddings
        patches = emb.patch_embeddings(pixel_values)  # [n, P, D]
        cls = emb.cls_token.expand(patches.shape[0], -1, -1)  # [n, 1, D]
        hidden = torch.cat([cls, patches], dim=1) + emb.position_embeddings  # [n, 1 + P, D]
        hidden = self.layernorm(self.encoder(hidden).last_hidden_state)[:, 1:]  # [n, P, D], CLS dropped
        grid = hidden.reshape(hidden.shape[0], self.side, self.side, hidden.shape[-1])  # [n, s, s, D]
        shuffled = self.pixel_shuffle(grid, scale_factor=self.downsample)  # [n, s/2, s/2, 4D]
        return self.projector(shuffled.reshape(shuffled.shape[0], -1, shuffled.shape[-1]))  # [n, tokens, text_hidden]


def vision_graph(ref: Any) -> VisionGraph:
    """One input, ``pixel_values`` [tiles, 3, T, T]; the manifest's vision is a fixed-size ``image`` kind."""
    cfg = ref.hf.config
    tile, patch = _first(cfg.vision_config.image_size), _first(cfg.vision_config.patch_size)
    tokens = int((tile // patch) ** 2 * cfg.downsample_ratio ** 2)

    def example(batch: int, patches: int, target: str) -> tuple[torch.Tensor, ...]:
        return (torch.randn(max(batch, 1), 3, tile, tile, generator=torch.Generator().manual_seed(0)),)

    return VisionGraph(lambda target: InternVLVision(ref.hf), [VisionInput("pixel_values", ("batch", 3, tile, tile),
                                                                           "float32")],
                       {"kind": "image", "image_size": tile, "patch_size": patch, "tokens_per_chunk": tokens}, example)
