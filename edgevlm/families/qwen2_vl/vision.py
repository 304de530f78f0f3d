"""The Qwen2-VL / Qwen2.5-VL vision tower for export: one packed sequence, tables as inputs.

transformers' tower (``Qwen2VisionTransformerPretrainedModel`` / ``Qwen2_5_Vision...``) computes
per-image tables with Python loops and splits attention per image with ``cu_seqlens.tolist()``;
neither traces. This module runs the same weights (transformers' own patch embed, norms, MLPs and
merger modules) over all patches of all images as one sequence, and takes what depends on the
grids as graph inputs made by numpy (``edgevlm.processing.packed_vit``):

    pixel_values        float32 [N, C*T*p*p]   processor rows, all images concatenated
    rotary_cos/sin      float32 [N, head_dim]  2-D rotary per patch, attention order
    attention_segments  int64   [N]            frame id: full-attention blocks attend within it
    window_segments     int64   [N]            (2.5) window id: windowed blocks attend within it
    window_index        int64   [N/U]          (2.5) merged-token order the blocks see
    reverse_index       int64   [N/U]          (2.5) back to raster-block order after the merger
    -> features         float32 [N/U, D]       rows in prompt order (image after image)

Attention masks are built in the graph from the segment ids (an N x N float mask as input would be
N^2 floats). The masked attention costs N^2 per block even for 2.5's windows; padding windows to
``window`` tokens and batching them would cost N * window instead (left for later).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...processing.packed_vit import PackedViTSpec

INPUTS_2 = ["pixel_values", "rotary_cos", "rotary_sin", "attention_segments"]
INPUTS_25 = INPUTS_2 + ["window_segments", "window_index", "reverse_index"]


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _segment_bias(segments: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[N] ids -> additive [N, N]: 0 within a segment, a large negative across (every row keeps itself)."""
    same = segments[:, None] == segments[None, :]  # [N, N] bool
    return torch.where(same, torch.zeros((), dtype=dtype), torch.full((), torch.finfo(dtype).min, dtype=dtype))


class PackedVision(nn.Module):
    """Same math as transformers' vision tower + merger for the images whose tables are given."""

    def __init__(self, visual: nn.Module):
        super().__init__()
        cfg = visual.config
        self.patch_embed = visual.patch_embed
        self.blocks = visual.blocks
        self.merger = visual.merger
        self.unit = cfg.spatial_merge_size ** 2
        self.windowed = getattr(cfg, "fullatt_block_indexes", None) is not None
        self.full_blocks = set(cfg.fullatt_block_indexes) if self.windowed else set(range(len(visual.blocks)))
        self.num_heads = cfg.num_heads

    @property
    def input_names(self) -> list[str]:
        return INPUTS_25 if self.windowed else INPUTS_2

    def _attention(self, attn: nn.Module, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                   bias: torch.Tensor) -> torch.Tensor:
        n, dim = x.shape
        qkv = attn.qkv(x).reshape(n, 3, self.num_heads, dim // self.num_heads).permute(1, 2, 0, 3)  # [3, H, N, hd]
        q, k, v = qkv[0], qkv[1], qkv[2]  # [H, N, hd] each
        q = q * cos + _rotate_half(q) * sin  # cos/sin [N, hd] broadcast over heads
        k = k * cos + _rotate_half(k) * sin
        scores = torch.matmul(q, k.transpose(1, 2)) * attn.scaling + bias  # [H, N, N]
        out = torch.matmul(torch.softmax(scores, dim=-1), v)  # [H, N, hd]
        return attn.proj(out.transpose(0, 1).reshape(n, dim))  # [N, D]

    def forward(self, pixel_values, rotary_cos, rotary_sin, attention_segments, window_segments=None,
                window_index=None, reverse_index=None):
        weight = self.patch_embed.proj.weight  # Conv3d [D, C, T, p, p] over rows laid out (C, T, p, p)
        x = torch.matmul(pixel_values, weight.reshape(weight.shape[0], -1).t())  # [N, D]
        n, dim = x.shape
        if self.windowed:
            x = x.reshape(n // self.unit, self.unit, dim)[window_index].reshape(n, dim)  # attention order
        full_bias = _segment_bias(attention_segments, x.dtype)  # [N, N]
        window_bias = _segment_bias(window_segments, x.dtype) if self.windowed else full_bias
        for index, block in enumerate(self.blocks):
            bias = full_bias if index in self.full_blocks else window_bias
            x = x + self._attention(block.attn, block.norm1(x), rotary_cos, rotary_sin, bias)
            x = x + block.mlp(block.norm2(x))
        features = self.merger(x)  # [N/U, D_out]
        if self.windowed:
            features = features[reverse_index]  # raster-block order, image after image
        return features


def packed_vit_spec(vision_config: Any) -> PackedViTSpec:
    """The table parameters of a transformers vision config (2: embed_dim; 2.5: hidden_size)."""
    dim = getattr(vision_config, "embed_dim", None) or vision_config.hidden_size
    return PackedViTSpec(head_dim=dim // vision_config.num_heads,
                         rope_theta=float(vision_config.rope_parameters["rope_theta"]),
                         merge_size=vision_config.spatial_merge_size, patch_size=vision_config.patch_size,
                         window_size=getattr(vision_config, "window_size", None)
                         if getattr(vision_config, "fullatt_block_indexes", None) is not None else None)


def export_vision_onnx(ref: Any, path, dtype: str = "fp32") -> list[str]:
    """Trace ``PackedVision`` of ``ref`` (a Qwen2VLReference) to ``path``; returns the input names.

    Traced with two images of different grids so no size is baked in; every axis over patches /
    tokens is dynamic.
    """
    from ...export.onnx_common import export_module
    from ...processing.packed_vit import packed_vit_inputs

    visual = ref.hf.model.visual
    module = PackedVision(visual).float().eval()
    grids = [(1, 8, 12), (1, 4, 4)]
    tables = packed_vit_inputs(grids, packed_vit_spec(visual.config))
    n = sum(t * h * w for t, h, w in grids)
    patch_dim = visual.patch_embed.proj.weight[0].numel()
    args = [torch.randn(n, patch_dim)] + [torch.from_numpy(tables[name]) for name in module.input_names[1:]]
    axes = {"pixel_values": {0: "patches"}, "rotary_cos": {0: "patches"}, "rotary_sin": {0: "patches"},
            "attention_segments": {0: "patches"}, "window_segments": {0: "patches"},
            "window_index": {0: "tokens"}, "reverse_index": {0: "tokens"}, "features": {0: "tokens"}}
    names = module.input_names
    export_module(module, tuple(args), path, names, ["features"], {k: v for k, v in axes.items()
                                                                    if k in names or k == "features"}, dtype)
    return names
