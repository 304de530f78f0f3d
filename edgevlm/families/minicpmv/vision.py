"""MiniCPM-V's vision forward, written once: navit SigLIP over one chunk's patches, then the resampler.

The reference (``MiniCPMV.image_features``), the ONNX part and the Core ML part all run
``navit_features``. A chunk (the overview or one slice) arrives as a sequence of patches,
pixel_values [B, 3, p, L] (L = patches * p, zero-padded to the longest chunk of the batch); the
per-chunk tables that depend on its (h, w) grid through bucketing do not trace, so they are inputs
computed with numpy (edgevlm/processing/vision_inputs.py): ``position_ids`` (rows of the learned
70 x 70 position table) and ``key_pos`` (the resampler's 2-D sin/cos key table).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ...processing.vision_inputs import bucketed_position_ids, sincos_2d_keys
from ..common.vision_graph import VisionGraph, VisionInput

# The additive mask value per target: Core ML runs in float16, where 0 * finfo(float32).min = 0 * -inf = NaN.
MASK_VALUES = {"onnx": float(torch.finfo(torch.float32).min), "coreml": -65000.0}
INPUTS = [VisionInput("pixel_values", ("batch", 3, "patch", "length"), "float32"),
          VisionInput("patch_attention_mask", ("batch", "patches"), "bool"),
          VisionInput("position_ids", ("batch", "patches"), "int64"),
          VisionInput("key_pos", ("batch", "patches", "dim"), "float32")]


def navit_features(vpm: nn.Module, resampler: nn.Module, pixel_values: torch.Tensor, real: torch.Tensor,
                   position_ids: torch.Tensor, key_pos: torch.Tensor, mask_value: float) -> torch.Tensor:
    """pixel_values [B, 3, p, L], real [B, N] bool (True = a patch, not padding), position_ids [B, N],
    key_pos [B, N, D] -> features [B, query_num, D]."""
    emb = vpm.embeddings.patch_embedding(pixel_values)  # [B, Dv, 1, N]
    emb = emb.flatten(2).transpose(1, 2)  # [B, N, Dv]
    emb = emb + vpm.embeddings.position_embedding(position_ids)
    # Bidirectional attention within each chunk; padded patches are never attended to.
    additive = (~real).to(emb.dtype) * mask_value  # [B, N]
    hidden = vpm.encoder(inputs_embeds=emb, attention_mask=additive[:, None, None, :]).last_hidden_state
    tokens = vpm.post_layernorm(hidden)  # [B, N, Dv]
    return resampler(tokens, key_pos, ~real)  # [B, Q, D]


class NavitVision(nn.Module):
    """The exported module: ``navit_features`` with the target's mask convention (bool, or float 0/1 in Core ML)."""

    def __init__(self, ref: Any, target: str):
        super().__init__()
        self.vpm, self.resampler = ref.vpm, ref.resampler
        self.mask_value = MASK_VALUES[target]

    def forward(self, pixel_values, patch_attention_mask, position_ids, key_pos):
        real = patch_attention_mask if patch_attention_mask.dtype == torch.bool else patch_attention_mask > 0.5
        return navit_features(self.vpm, self.resampler, pixel_values, real, position_ids, key_pos, self.mask_value)


def chunk_tables(tgt_sizes: np.ndarray, max_patches: int, per_side: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(position_ids int64 [B, N], key_pos float32 [B, N, dim]) for chunks of (h, w) patches."""
    return bucketed_position_ids(tgt_sizes, max_patches, per_side), sincos_2d_keys(tgt_sizes, dim, max_patches)


def _example(ref: Any, batch: int, patches: int, target: str) -> tuple[torch.Tensor, ...]:
    """Chunks of 2 x 3 real patches padded to ``patches`` (for tracing and shape checks)."""
    patch, dim = ref.vpm.config.patch_size, ref.resampler.embed_dim
    tgt = np.array([[2, 3]] * batch, np.int32)
    real = 6
    pixels = torch.randn(batch, 3, patch, patches * patch, generator=torch.Generator().manual_seed(0))
    pixels[..., real * patch:] = 0
    mask = torch.zeros(batch, patches, dtype=torch.bool)
    mask[:, :real] = True
    ids, keys = chunk_tables(tgt, patches, ref.patches_per_side, dim)
    if target == "coreml":
        return pixels, mask.float(), torch.from_numpy(ids.astype(np.int32)), torch.from_numpy(keys)
    return pixels, mask, torch.from_numpy(ids), torch.from_numpy(keys)


def vision_graph(ref: Any, coreml_patches: list[int]) -> VisionGraph:
    patch, dim = ref.vpm.config.patch_size, ref.resampler.embed_dim
    inputs = [VisionInput(i.name, tuple(patch if d == "patch" else dim if d == "dim" else d for d in i.dims), i.dtype)
              for i in INPUTS]
    record = {"kind": "patch_sequence", "patch_size": patch, "tokens_per_chunk": int(ref.query_num),
              # parameters of the derived inputs (processing/vision_inputs.py)
              "position_table_side": int(ref.patches_per_side), "key_pos_dim": int(dim)}
    return VisionGraph(lambda target: NavitVision(ref, target), inputs, record,
                       lambda batch, patches, target: _example(ref, batch, patches, target),
                       derived={"position_ids": "bucketed_position_ids", "key_pos": "sincos_2d_keys"},
                       coreml_patches=coreml_patches)
