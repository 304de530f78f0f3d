"""The LLaVA vision part, written once: tiles in, projected per-tile features out.

``LlavaVision(hf_model)`` maps pixel_values float32 ``[B, 3, S, S]`` (the base tile and the grid
tiles of any number of images, batched) to ``[B, T, D_text]``: the vision tower run only up to the
deepest feature layer, the CLS token dropped ("default" strategy), the 2-layer GELU projector. It
is built from the transformers model's own submodules (no copied weights, no re-implementation of
the layers) and reproduces ``get_image_features``' per-tile projector output exactly.

Where the graph stops, and why: everything after the projector (putting the tiles back into one
map, dropping the padding rows/columns, OneVision's bilinear shrink, the newline column) depends on
the image's size and pinpoint, so its shapes are data-dependent; it is a few numpy slices on the
projected features (``edgevlm/processing/anyres_features.py``, the "anyres" processor kinds' pack).
Stopping at the projector keeps one graph with a fixed per-tile shape and only a dynamic batch (the
same for LLaVA 1.5, NeXT and OneVision, and for Core ML's fixed shapes), makes every tile cacheable on
its own, and is the same cut llama.cpp's mtmd makes (it encodes each tile through its llava graph).
The learned ``image_newline`` vector the packing appends ships beside the graph as a table (a bundle
data part, ``VisionGraph.tables``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..common.vision_graph import VisionGraph, VisionInput


def feature_layer_indices(layer: int | list[int], num_layers: int) -> list[int]:
    """Non-negative ``hidden_states`` indices (0 = the embeddings, k = after encoder layer k)."""
    layers = [layer] if isinstance(layer, int) else list(layer)
    return [index if index >= 0 else num_layers + 1 + index for index in layers]


class LlavaVision(nn.Module):
    """pixel_values ``[B, 3, S, S]`` -> features ``[B, T, D_text]`` (T = (S/patch)^2, + CLS if kept)."""

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
        self.has_cls = hasattr(tower.embeddings, "class_embedding")
        self.drop_cls = self.has_cls and config.vision_feature_select_strategy == "default"
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

    def tokens_per_tile(self, image_size: int, patch_size: int) -> int:
        return (image_size // patch_size) ** 2 + (1 if self.has_cls and not self.drop_cls else 0)


def image_newline(hf_model: nn.Module) -> np.ndarray | None:
    """float32 ``[D_text]``: the learned row-end embedding of NeXT / OneVision (None for LLaVA 1.5)."""
    newline = getattr(hf_model.model, "image_newline", None)
    return None if newline is None else newline.detach().float().numpy()


def vision_graph(hf_model: nn.Module) -> VisionGraph:
    """The one vision forward for every target: fixed square tiles, dynamic batch (ONNX) or batch 1 (Core ML)."""
    vision = hf_model.config.vision_config
    size, patch = int(vision.image_size), int(vision.patch_size)
    tokens = LlavaVision(hf_model).tokens_per_tile(size, patch)

    def example(batch: int, patches: int, target: str) -> tuple[torch.Tensor, ...]:
        # ONNX: traced with two tiles so that nothing specialises to a batch of one (CLIP's CLS expand).
        batch = max(batch, 2) if target == "onnx" else batch
        return (torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0)),)

    newline = image_newline(hf_model)
    return VisionGraph(lambda target: LlavaVision(hf_model), [VisionInput("pixel_values", ("batch", 3, size, size),
                                                                          "float32")],
                       {"kind": "image", "image_size": size, "patch_size": patch, "tokens_per_chunk": tokens},
                       example, tables={} if newline is None else {"image_newline": newline})

