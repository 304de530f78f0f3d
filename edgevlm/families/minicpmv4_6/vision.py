"""MiniCPM-V 4.6 / 4.7's vision forward, written once: navit SigLIP, window-attention merger, merger MLP.

``WindowMergeVision`` re-wires transformers' own submodules (no weight copies) into a graph over a
batch of zero-padded chunks (the overview or one slice each), for dynamic ONNX and fixed Core ML
shapes alike; the reference (``MiniCPMV46.image_features``) runs transformers' own
``get_image_features`` instead, and the parity tests compare the two:

  pixel_values [B, 3, p, N*p]      chunks patchified as the processor does, padded to N patches
  patch_attention_mask [B, N]      real patches (a prefix of each row); bool, or float 0/1 in Core ML
  position_ids [B, N]              navit position-table rows (processing/vision_inputs.bucketed_position_ids)
  window_index [B, N]              "16x" only: the patch grid in 2x2-window order (window_order_2x2)
  merge_index [B, N]               the grid the merger MLP groups, in 2x2-window order: the patch grid
                                   ("4x"), or the grid left by the window merger ("16x", first N/4 used)
    -> features [B, N/16 ("16x") or N/4 ("4x"), D_text]; chunk b's h*w/16 (h*w/4) rows come first.

transformers runs all chunks as one packed sequence with per-chunk attention (``cu_seqlens``) and
``.tolist()`` loops that do not trace; here each chunk is one batch row with a key mask, and the
per-chunk tables are inputs computed with numpy (derived inputs), as llama.cpp's minicpmv4_6 graph
takes them (tools/mtmd/models/minicpmv.cpp). Per chunk the math is transformers'.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ...errors import CheckpointError
from ...processing.slicing import chunk_patch_buckets
from ...processing.vision_inputs import DERIVED
from ..common.vision_graph import VisionGraph, VisionInput
from .spec import DOWNSAMPLE_MODES, merge_side

# The additive mask value per target: Core ML runs in float16, where 0 * finfo(float32).min = NaN.
MASK_VALUES = {"onnx": float(torch.finfo(torch.float32).min), "coreml": -65000.0}


def _attention(attn: nn.Module, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Bidirectional multi-head attention with a MiniCPMV4_6VisionAttention's projections: [G, L, D] -> [G, L, D]."""
    g, n, d = x.shape
    heads = attn.num_heads
    q = attn.q_proj(x).view(g, n, heads, -1).transpose(1, 2)  # [G, H, L, hd]
    k = attn.k_proj(x).view(g, n, heads, -1).transpose(1, 2)
    v = attn.v_proj(x).view(g, n, heads, -1).transpose(1, 2)
    scores = torch.matmul(q, k.transpose(2, 3)) * attn.scaling  # [G, H, L, L]
    if bias is not None:
        scores = scores + bias  # [G, 1, 1, L]: padded keys get a large negative value
    probs = torch.softmax(scores, dim=-1)
    return attn.out_proj(torch.matmul(probs, v).transpose(1, 2).reshape(g, n, d))


def _gather_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x[b, index[b, i]] for every row: [B, N, D], [B, M] -> [B, M, D]."""
    return torch.gather(x, 1, index.long()[:, :, None].expand(-1, -1, x.shape[-1]))


def check_mergeable(hf_model: nn.Module) -> None:
    config = hf_model.config
    if config.merger_times != 1 or tuple(config.merge_kernel_size) != (2, 2):
        raise CheckpointError(f"MiniCPM-V merger with merger_times={config.merger_times}, merge_kernel_size="
                              f"{config.merge_kernel_size}: edgevlm exports merger_times 1 with 2x2 kernels "
                              "(as the published checkpoints and llama.cpp's minicpmv4_6 projector).")
    if tuple(hf_model.model.vision_tower.config.window_kernel_size) != (2, 2):
        raise CheckpointError(f"window_kernel_size {hf_model.model.vision_tower.config.window_kernel_size}: "
                              "edgevlm exports 2x2 windows.")


class WindowMergeVision(nn.Module):
    """The vision tower + merger of a ``MiniCPMV4_6Model`` (or 4_7) in one downsample mode, for one target."""

    def __init__(self, hf_model: nn.Module, downsample_mode: str, target: str = "onnx"):
        super().__init__()
        check_mergeable(hf_model)
        self.tower = hf_model.model.vision_tower  # embeddings, encoder.layers, vit_merger, post_layernorm
        self.merger = hf_model.model.merger
        self.use_window_merger = downsample_mode == "16x"
        self.insert_layer_id = int(self.tower.config.insert_layer_id)
        self.mask_value = MASK_VALUES[target]

    def _encoder_layer(self, layer: nn.Module, h: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        h = h + _attention(layer.self_attn, layer.layer_norm1(h), bias)
        return h + layer.mlp(layer.layer_norm2(h))

    def _window_merger(self, h: torch.Tensor, window_index: torch.Tensor) -> torch.Tensor:
        """MiniCPMV4_6ViTWindowAttentionMerger on a padded batch: [B, N, Dv] -> [B, N/4, Dv]."""
        merger = self.tower.vit_merger
        b, _, d = h.shape
        x = _gather_rows(merger.layer_norm1(h), window_index)  # [B, N, Dv], windows contiguous
        residual = _gather_rows(h, window_index)
        attended = _attention(merger.self_attn, x.reshape(-1, 4, d), None).reshape(b, -1, d)  # 4 tokens a window
        windows = (residual + attended).reshape(b, -1, 4, d)  # [B, N/4, 4, Dv]
        flat = windows.flatten(2)  # [B, N/4, 4*Dv]: the window's patches concatenated in row-major order
        out = merger.linear_2(merger.act(merger.linear_1(merger.pre_norm(flat))))
        return out + windows.mean(dim=2)

    def forward(self, pixel_values, patch_attention_mask, position_ids, window_index, merge_index):
        emb = self.tower.embeddings
        h = emb.patch_embedding(pixel_values).flatten(2).transpose(1, 2)  # [B, N, Dv]
        h = h + emb.position_embedding(position_ids.long())
        real = patch_attention_mask if patch_attention_mask.dtype == torch.bool else patch_attention_mask > 0.5
        for i, layer in enumerate(self.tower.encoder.layers):
            bias = (~real).to(h.dtype)[:, None, None, :] * self.mask_value  # [B, 1, 1, N]
            h = self._encoder_layer(layer, h, bias)
            if self.use_window_merger and i == self.insert_layer_id:
                h = self._window_merger(h, window_index)  # [B, N/4, Dv]
                real = real[:, ::4]  # real patches are a prefix of N_b (a multiple of 16) rows
        h = self.tower.post_layernorm(h)
        groups = _gather_rows(h, merge_index[:, : h.shape[1]])  # [B, M, Dv] in 2x2-window order
        groups = groups.reshape(h.shape[0], -1, 4 * h.shape[-1])  # [B, M/4, 4*Dv]
        mlp = self.merger.mlp[0]  # MiniCPMV4_6DownsampleMLP; its own forward flattens the batch
        return mlp.linear_2(mlp.act(mlp.linear_1(mlp.pre_norm(groups))))  # [B, M/4, D_text]


class _NoWindow(nn.Module):
    """"4x" skips the window merger: its table would be an unused input, so the graph does not take it."""

    def __init__(self, graph: WindowMergeVision):
        super().__init__()
        self.graph = graph

    def forward(self, pixel_values, patch_attention_mask, position_ids, merge_index):
        return self.graph(pixel_values, patch_attention_mask, position_ids, None, merge_index)


def derived_inputs(mode: str) -> dict[str, str]:
    """Graph input -> the derived-input kind the runtime computes (processing/vision_inputs.py)."""
    if mode == "16x":
        return {"position_ids": "bucketed_position_ids", "window_index": "window_order_2x2",
                "merge_index": "window_order_2x2_after_merge"}
    return {"position_ids": "bucketed_position_ids", "merge_index": "window_order_2x2"}


def _example(ref: Any, mode: str, batch: int, patches: int, target: str) -> tuple[torch.Tensor, ...]:
    """Inputs for chunks of 4-patch-high grids padded to ``patches`` (for tracing and shape checks)."""
    patch = ref.patch_size
    step = merge_side(mode)
    patches = max(patches, 32)
    width = max(step, (patches // 4) // step * step)  # a 4 x width grid that fits
    grids = np.array([[4, max(step, width - step * (b % 2))] for b in range(batch)])  # two sizes: padding exercised
    pixels = torch.randn(batch, 3, patch, patches * patch, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(batch, patches, dtype=torch.bool)
    for b, (h, w) in enumerate(grids):
        pixels[b, ..., h * w * patch:] = 0
        mask[b, : h * w] = True
    params = ref.vision_params()
    feeds = {name: torch.from_numpy(DERIVED[kind](grids, patches, params)) for name, kind in derived_inputs(mode).items()}
    if target == "coreml":
        mask = mask.float()
        feeds = {k: v.int() for k, v in feeds.items()}
    return (pixels, mask, *(feeds[n] for n in ("position_ids", "window_index", "merge_index") if n in feeds))


def vision_graph(ref: Any) -> VisionGraph:
    mode, patch = ref.downsample_mode, ref.patch_size
    names = [n for n in ("pixel_values", "patch_attention_mask", "position_ids", "window_index", "merge_index")
             if n in ("pixel_values", "patch_attention_mask", *derived_inputs(mode))]
    dims = {"pixel_values": (("batch", 3, patch, "length"), "float32"),
            "patch_attention_mask": (("batch", "patches"), "bool")}
    inputs = [VisionInput(n, *dims.get(n, (("batch", "patches"), "int64"))) for n in names]
    record = {"kind": "patch_sequence", "patch_size": patch, "downsample_mode": mode,
              # a chunk of n patches gives n / patches_per_token rows (padding patches give padding rows)
              "patches_per_token": DOWNSAMPLE_MODES[mode],
              # rows of a full square chunk; each chunk gives h*w / patches_per_token (processor options)
              "tokens_per_chunk": (ref.scale_resolution // patch) ** 2 // DOWNSAMPLE_MODES[mode],
              **ref.vision_params()}

    def module(target: str) -> nn.Module:
        graph = WindowMergeVision(ref.hf, mode, target)
        return graph if mode == "16x" else _NoWindow(graph)

    # Core ML enumerates chunk sizes: LLaVA-UHD's buckets (multiples of 16 patches: whole merge windows)
    return VisionGraph(module, inputs, record, lambda batch, patches, target: _example(ref, mode, batch, patches, target),
                       derived=derived_inputs(mode), coreml_patches=chunk_patch_buckets(ref.scale_resolution, patch),
                       variable_tokens=True)
