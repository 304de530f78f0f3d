"""The LLaVA vision part for export: tiles in, projected per-tile features out.

``LlavaVision(hf_model)`` maps pixel_values float32 ``[B, 3, S, S]`` (the base tile and the grid
tiles of any number of images, batched) to ``[B, T, D_text]``: the vision tower run only up to the
deepest feature layer, the CLS token dropped ("default" strategy), the 2-layer GELU projector. It
is built from the transformers model's own submodules (no copied weights, no re-implementation of
the layers) and reproduces ``get_image_features``' per-tile projector output.

Where the graph stops, and why: everything after the projector (putting the tiles back into one
map, dropping the padding rows/columns, OneVision's bilinear shrink, the newline column) depends on
the image's size and pinpoint, so its shapes are data-dependent; it is a few numpy slices on the
projected features (``edgevlm/processing/anyres_features.py``). Stopping at the projector keeps one
graph with a fixed per-tile shape and only a dynamic batch (the same for LLaVA 1.5, NeXT and
OneVision, and for Core ML's fixed shapes), makes every tile cacheable on its own, and is the same
cut llama.cpp's mtmd makes (it encodes each tile through ``clip_graph_llava``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn


def feature_layer_indices(layer: int | list[int], num_layers: int) -> list[int]:
    """Non-negative ``hidden_states`` indices (0 = the embeddings, k = after encoder layer k)."""
    layers = [layer] if isinstance(layer, int) else list(layer)
    return [index if index >= 0 else num_layers + 1 + index for index in layers]


class LlavaVision(nn.Module):
    """pixel_values ``[B, 3, S, S]`` -> features ``[B, T, D_text]`` (T = (S/patch)^2)."""

    def __init__(self, hf_model: nn.Module):
        super().__init__()
        config = hf_model.config
        tower = hf_model.model.vision_tower  # CLIPVisionModel | SiglipVisionModel (transformers 5 layout)
        self.embeddings = tower.embeddings
        # CLIP normalises the embeddings before the encoder (part of hidden_states[0]); SigLIP does not.
        self.pre_norm = getattr(tower, "pre_layrnorm", None) or nn.Identity()
        self.feature_layers = feature_layer_indices(config.vision_feature_layer, len(tower.encoder.layers))
        # Only the layers up to the deepest feature layer run (LLaVA 1.5/NeXT skip CLIP's last one).
        self.layers = nn.ModuleList(tower.encoder.layers[: max(self.feature_layers)])
        self.drop_cls = config.vision_feature_select_strategy == "default"
        self.projector = hf_model.model.multi_modal_projector

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        hidden = self.pre_norm(self.embeddings(pixel_values))  # [B, 1 + N (CLIP) or N (SigLIP), Dv]
        states = [hidden]
        for layer in self.layers:
            hidden = layer(hidden, None)  # bidirectional attention over the tile, no mask
            states.append(hidden)
        selected = [states[index] for index in self.feature_layers]
        if self.drop_cls:
            selected = [state[:, 1:] for state in selected]  # [B, N, Dv]
        return self.projector(torch.cat(selected, dim=-1))  # [B, N, D_text]


def export_vision_onnx(hf_model: nn.Module, path: str | Path, dtype: str = "fp32") -> Path:
    """``LlavaVision`` as ONNX with a dynamic tile batch: pixel_values -> features."""
    from edgevlm.export.onnx_common import export_module

    size = hf_model.config.vision_config.image_size
    example = (torch.randn(2, 3, size, size),)  # two tiles: the batch axis is traced as dynamic
    dynamic = {"pixel_values": {0: "tiles"}, "features": {0: "tiles"}}
    return export_module(LlavaVision(hf_model).float(), example, Path(path), ["pixel_values"], ["features"],
                         dynamic, dtype)


def vision_metadata(hf_model: nn.Module) -> dict[str, Any]:
    """What the runtime needs to know about the graph (manifest data)."""
    config = hf_model.config
    vision = config.vision_config
    return {"tile_size": vision.image_size, "patch_size": vision.patch_size,
            "tokens_per_tile": (vision.image_size // vision.patch_size) ** 2,
            "hidden_size": config.text_config.hidden_size}
