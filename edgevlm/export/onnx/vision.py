"""The vision part as ONNX: preprocessed pixels -> image features [n_chunks, tokens_per_chunk, hidden].

Two graph shapes, chosen by what the reference's ``image_features`` takes:
- fixed-size images (PaliGemma, Gemma 3): pixel_values [B, 3, H, W] -> features [B, N, D];
- navit slices (MiniCPM-V): pixel_values [B, 3, p, L] zero-padded, patch_attention_mask [B, L/p] bool,
  position_ids int64 [B, L/p] and key_pos [B, L/p, D] -> features [B, query_num, D]. The last two
  depend on each chunk's (h, w) through bucketing / per-chunk tables, so the runtime computes them with
  numpy (edgevlm.runtime.vision_inputs); ``extra["derived_inputs"]`` names them.
Batch and length are dynamic: a batch holds several slices, padded to the longest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...manifest import Part
from .common import export_module, io_spec


class NavitVision(nn.Module):
    """MiniCPM-V's vpm + resampler with the per-chunk tables as inputs (same math as MiniCPMV.image_features)."""

    def __init__(self, ref: Any):
        super().__init__()
        self.vpm = ref.vpm
        self.resampler = ref.resampler

    def forward(self, pixel_values, patch_attention_mask, position_ids, key_pos):
        emb = self.vpm.embeddings.patch_embedding(pixel_values)  # [B, Dv, 1, N]
        emb = emb.flatten(2).transpose(1, 2)  # [B, N, Dv]
        emb = emb + self.vpm.embeddings.position_embedding(position_ids)
        # Additive key mask: padded patches are never attended to (bidirectional within a chunk).
        additive = (~patch_attention_mask).to(emb.dtype) * torch.finfo(emb.dtype).min  # [B, N]
        hidden = self.vpm.encoder(inputs_embeds=emb, attention_mask=additive[:, None, None, :]).last_hidden_state
        tokens = self.vpm.post_layernorm(hidden)  # [B, N, Dv]
        return self.resampler(tokens, key_pos, ~patch_attention_mask)  # [B, Q, D]


class FixedVision(nn.Module):
    def __init__(self, ref: Any):
        super().__init__()
        self.ref = ref

    def forward(self, pixel_values):
        return self.ref.image_features(pixel_values)  # [B, tokens, D]


def _is_navit(ref: Any) -> bool:
    return hasattr(ref, "resampler") and hasattr(ref, "vpm")


def export_vision(ref: Any, path: str | Path, dtype: str = "fp32") -> Part:
    """Export the vision tower + connector of ``ref`` to ``path``; returns its Part (file = path's name)."""
    path = Path(path)
    if _is_navit(ref):
        patch = ref.vpm.config.patch_size
        dim = ref.resampler.embed_dim
        # Trace with two chunks of different sizes so padding and masks are exercised.
        tgt = [(2, 3), (2, 2)]
        n = max(h * w for h, w in tgt)
        mask = torch.zeros(2, n, dtype=torch.bool)
        for b, (h, w) in enumerate(tgt):
            mask[b, : h * w] = True
        args = (torch.randn(2, 3, patch, n * patch), mask, torch.zeros(2, n, dtype=torch.long),
                torch.zeros(2, n, dim))
        names = ["pixel_values", "patch_attention_mask", "position_ids", "key_pos"]
        dyn = {"pixel_values": {0: "batch", 3: "length"}, "patch_attention_mask": {0: "batch", 1: "patches"},
               "position_ids": {0: "batch", 1: "patches"}, "key_pos": {0: "batch", 1: "patches"},
               "features": {0: "batch"}}
        export_module(NavitVision(ref).float(), args, path, names, ["features"], dyn, dtype)
        extra = {"kind": "navit_slices", "patch_size": patch, "patches_per_side": ref.patches_per_side,
                 "embed_dim": dim, "tokens_per_chunk": ref.query_num,
                 "derived_inputs": {"position_ids": "navit_position_ids", "key_pos": "resampler_key_pos"}}
    else:
        cfg = ref.hf.config.vision_config
        args = (torch.randn(1, 3, cfg.image_size, cfg.image_size),)
        export_module(FixedVision(ref).float(), args, path, ["pixel_values"], ["features"],
                      {"pixel_values": {0: "batch"}, "features": {0: "batch"}}, dtype)
        with torch.no_grad():
            tokens = FixedVision(ref)(*args).shape[1]
        extra = {"kind": "fixed", "image_size": cfg.image_size, "tokens_per_chunk": int(tokens),
                 "derived_inputs": {}}
    inputs, outputs = io_spec(path)
    if (path.parent / (path.name + ".data")).exists():
        extra["external_data"] = path.name + ".data"
    if dtype == "fp16":
        extra["ort_graph_optimization"] = "extended"  # onnxruntime 1.32 segfaults on fp16 SigLIP at "all"
    return Part(file=path.name, format="onnx", inputs=inputs, outputs=outputs, dtype=dtype, extra=extra)
