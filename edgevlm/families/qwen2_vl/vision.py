"""The Qwen2-VL / Qwen2.5-VL vision forward, written once: images of one grid as a batch, tables as inputs.

transformers' tower (``Qwen2VisionTransformerPretrainedModel`` / ``Qwen2_5_Vision...``) computes
per-image tables with Python loops and splits attention per image with ``cu_seqlens.tolist()``;
neither traces. ``PackedVision`` runs the same weights (transformers' own patch embed, norms, MLPs
and merger modules) over B images that share one grid, and takes what depends on the grid as graph
inputs computed with numpy (edgevlm/processing/packed_vit.py, the runtime's derived inputs):

    pixel_values        float32 [B, N, C*T*p*p]  processor rows of B images with the same grid
    rotary_cos/sin      float32 [N, head_dim]    2-D rotary per patch, attention order
    attention_segments  int64   [N]              full-attention blocks attend within equal ids
    window_segments     int64   [N]              (2.5) windowed blocks attend within equal ids
    window_index        int64   [N/U]            (2.5) merged-token order the blocks see
    reverse_index       int64   [N/U]            (2.5) back to raster-block order after the merger
    -> features         float32 [B, N/U, D]      U = merge_size**2 patches per feature row

Segment ids rather than one grid per shape: a Core ML part has enumerated patch counts, so the
runtime pads an image's patches to the next count and gives the padding its own segment (real
patches never attend to it); the ONNX part runs each grid at its own length. The masks are built
in the graph from the ids (an N x N mask as input would be N^2 floats). Cost: masked attention is
N^2 per block, also for 2.5's windowed blocks (windows batched would cost N x 64; not done).

Attention in the ONNX part is onnxruntime's fused ``MultiHeadAttention`` (com.microsoft, with the
segment mask as attention bias), as the fused decoder graph uses onnxruntime's ops: the elementary
MatMul / Softmax chain materialises all heads' N x N scores at once (1 GB per block at N = 4096 for the
2B's 16 heads) and measured 2x slower per block at N = 4096; the fused op goes head by head. Core ML
(and the PyTorch reference path) keep the elementary math, which its converter maps.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ...processing.packed_vit import PackedViTSpec, packed_vit_inputs
from ..common.vision_graph import VisionGraph, VisionInput

TABLES_2 = ["rotary_cos", "rotary_sin", "attention_segments"]
TABLES_25 = TABLES_2 + ["window_segments", "window_index", "reverse_index"]
# Core ML: enumerated patch counts (squares of 16..64 patches a side: 64 to 1024 image tokens); an
# image is padded to the smallest that holds it (--slice-patches overrides the list).
COREML_PATCHES = [s * s for s in (16, 24, 32, 40, 48, 56, 64)]
# The additive mask value per target: Core ML runs in float16 (finfo(float32).min would be -inf there).
MASK_VALUES = {"onnx": float(torch.finfo(torch.float32).min), "coreml": -65000.0}


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class _FusedAttention(torch.autograd.Function):
    """softmax(q k^T * scale + bias) v over heads: the math in PyTorch, onnxruntime's MultiHeadAttention in ONNX."""

    @staticmethod
    def forward(ctx, q, k, v, bias, num_heads: int):  # q, k, v [B, N, D]; bias [N, N] -> [B, N, D]
        b, n, dim = q.shape
        split = lambda x: x.reshape(b, n, num_heads, dim // num_heads).transpose(1, 2)  # noqa: E731  [B, H, N, hd]
        scores = torch.matmul(split(q), split(k).transpose(-1, -2)) * (dim // num_heads) ** -0.5 + bias
        return torch.matmul(torch.softmax(scores, dim=-1), split(v)).transpose(1, 2).reshape(b, n, dim)

    @staticmethod
    def symbolic(g, q, k, v, bias, num_heads: int):
        from torch.onnx import symbolic_helper

        none = symbolic_helper._optional_input_placeholder_tensor(g)
        bias = g.op("Unsqueeze", bias, g.op("Constant", value_t=torch.tensor([0, 1])))  # [1, 1, N, N]
        out = g.op("com.microsoft::MultiHeadAttention", q, k, v, none, none, bias, num_heads_i=num_heads)
        out.setType(q.type())  # [B, N, D] like the query (the exporter cannot infer a contrib op's shape)
        return out


def _segment_bias(segments: torch.Tensor, mask_value: float, dtype: torch.dtype) -> torch.Tensor:
    """[N] ids -> additive [N, N]: 0 within a segment, ``mask_value`` across (every row keeps itself)."""
    same = segments[:, None] == segments[None, :]  # [N, N] bool
    return torch.where(same, torch.zeros((), dtype=dtype), torch.full((), mask_value, dtype=dtype))


class PackedVision(nn.Module):
    """Same math as transformers' vision tower + merger, for B images of the grid the tables describe."""

    def __init__(self, visual: nn.Module, target: str = "onnx"):
        super().__init__()
        cfg = visual.config
        self.patch_embed, self.blocks, self.merger = visual.patch_embed, visual.blocks, visual.merger
        self.unit = cfg.spatial_merge_size ** 2
        self.windowed = getattr(cfg, "fullatt_block_indexes", None) is not None
        self.full_blocks = set(cfg.fullatt_block_indexes) if self.windowed else set(range(len(visual.blocks)))
        self.num_heads = cfg.num_heads
        self.mask_value = MASK_VALUES[target]
        self.fused = target == "onnx"

    @property
    def input_names(self) -> list[str]:
        return ["pixel_values"] + (TABLES_25 if self.windowed else TABLES_2)

    def _attention(self, attn: nn.Module, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                   bias: torch.Tensor) -> torch.Tensor:
        b, n, dim = x.shape
        hd = dim // self.num_heads
        qkv = attn.qkv(x).reshape(b, n, 3, self.num_heads, hd).permute(2, 0, 3, 1, 4)  # [3, B, H, N, hd]
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B, H, N, hd] each
        q = q * cos + _rotate_half(q) * sin  # cos/sin [N, hd] broadcast over batch and heads
        k = k * cos + _rotate_half(k) * sin
        if self.fused:  # onnxruntime's MultiHeadAttention takes [B, N, D] (scale: hd^-0.5, as attn.scaling)
            merge = lambda t: t.transpose(1, 2).reshape(b, n, dim)  # noqa: E731
            return attn.proj(_FusedAttention.apply(merge(q), merge(k), merge(v), bias, self.num_heads))
        scores = torch.matmul(q, k.transpose(-1, -2)) * attn.scaling + bias  # [B, H, N, N]
        out = torch.matmul(torch.softmax(scores, dim=-1), v)  # [B, H, N, hd]
        return attn.proj(out.transpose(1, 2).reshape(b, n, dim))  # [B, N, D]

    def forward(self, pixel_values, rotary_cos, rotary_sin, attention_segments, window_segments=None,
                window_index=None, reverse_index=None):
        weight = self.patch_embed.proj.weight  # Conv3d [D, C, T, p, p] over rows laid out (C, T, p, p)
        x = torch.matmul(pixel_values, weight.reshape(weight.shape[0], -1).t())  # [B, N, D]
        b, n, dim = x.shape
        if self.windowed:  # whole merge units move to attention order
            x = x.reshape(b, n // self.unit, self.unit, dim)[:, window_index].reshape(b, n, dim)
        full_bias = _segment_bias(attention_segments, self.mask_value, x.dtype)  # [N, N]
        window_bias = _segment_bias(window_segments, self.mask_value, x.dtype) if self.windowed else full_bias
        for index, block in enumerate(self.blocks):
            bias = full_bias if index in self.full_blocks else window_bias
            x = x + self._attention(block.attn, block.norm1(x), rotary_cos, rotary_sin, bias)
            x = x + block.mlp(block.norm2(x))
        features = self.merger(x).reshape(b, n // self.unit, -1)  # [B, N/U, D_out]
        if self.windowed:
            features = features[:, reverse_index]  # raster-block order
        return features


def packed_vit_spec(vision_config: Any) -> PackedViTSpec:
    """The table parameters of a transformers vision config (2: embed_dim; 2.5: hidden_size)."""
    dim = getattr(vision_config, "embed_dim", None) or vision_config.hidden_size
    windowed = getattr(vision_config, "fullatt_block_indexes", None) is not None
    merge, patch = vision_config.spatial_merge_size, vision_config.patch_size
    return PackedViTSpec(head_dim=dim // vision_config.num_heads,
                         rope_theta=float(vision_config.rope_parameters["rope_theta"]), merge_size=merge,
                         window_tokens=vision_config.window_size // patch // merge if windowed else None)


def example_grid(patches: int, merge: int) -> tuple[int, int, int]:
    """A grid (1, h, w) of exactly ``patches`` patches with sides multiples of ``merge``, as square as possible."""
    blocks = patches // (merge * merge)
    rows = max(r for r in range(1, int(blocks ** 0.5) + 1) if blocks % r == 0)
    return 1, rows * merge, blocks // rows * merge


def _example(ref: Any, batch: int, patches: int, target: str) -> tuple[torch.Tensor, ...]:
    """Example inputs for tracing. ONNX traces a grid of 8 x 12 patches, whose windows are partial on
    both sides (every axis is dynamic, so the size is not baked in); Core ML one of ``patches`` patches."""
    visual = ref.hf.model.visual
    spec = packed_vit_spec(visual.config)
    grid = (1, 8, 12) if target == "onnx" else example_grid(patches, spec.merge_size)
    tables = packed_vit_inputs([grid], spec)
    n = grid[0] * grid[1] * grid[2]
    pixels = torch.randn(batch, n, visual.patch_embed.proj.weight[0].numel(), generator=torch.Generator().manual_seed(0))
    names = PackedVision(visual).input_names[1:]
    cast = (lambda a: a.astype(np.int32)) if target == "coreml" else (lambda a: a)
    return (pixels, *[torch.from_numpy(cast(tables[name])) for name in names])


def vision_graph(ref: Any) -> VisionGraph:
    visual = ref.hf.model.visual
    cfg, spec = visual.config, packed_vit_spec(visual.config)
    unit = spec.merge_size ** 2
    patch_dim = int(visual.patch_embed.proj.weight[0].numel())
    dims = {"pixel_values": ("batch", "patches", patch_dim), "rotary_cos": ("patches", spec.head_dim),
            "rotary_sin": ("patches", spec.head_dim), "attention_segments": ("patches",),
            "window_segments": ("patches",), "window_index": ("tokens",), "reverse_index": ("tokens",)}
    names = PackedVision(visual).input_names
    inputs = [VisionInput(n, dims[n], "float32" if n.startswith(("pixel", "rotary")) else "int64", patches_per_token=unit)
              for n in names]
    record = {"kind": "packed_patches", "patch_size": int(cfg.patch_size), "tokens_per_chunk": 0,  # 0: per image
              # parameters of the derived inputs (processing/vision_inputs.py)
              "head_dim": spec.head_dim, "rope_theta": spec.rope_theta, "merge_size": spec.merge_size,
              "window_tokens": spec.window_tokens}
    return VisionGraph(lambda target: PackedVision(visual, target), inputs, record,
                       lambda batch, patches, target: _example(ref, batch, patches, target),
                       derived={name: "packed_" + name for name in names[1:]}, coreml_patches=list(COREML_PATCHES),
                       variable_tokens=True)
