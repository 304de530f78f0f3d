"""MiniCPM-V 4.6 / 4.7 vision part for export: navit SigLIP, window-attention merger, merger MLP.

One module, ``WindowMergeVision``, re-wires transformers' own submodules (no weight copies) into a
graph over a batch of zero-padded slices, for dynamic ONNX and for fixed Core ML shapes alike:

  pixel_values [B, 3, p, N*p]      slices patchified as the processor does, padded to N patches
  patch_attention_mask [B, N] bool real patches (a prefix of each row)
  position_ids [B, N] int64        navit position-table rows (runtime/vision_inputs.navit_position_ids)
  window_index [B, N] int64        "16x" only: 2x2-window order of the patch grid (runtime/vision_windows)
  merge_index [B, N/4 or N] int64  2x2-window order of the grid the merger MLP groups
    -> features [B, N/16 ("16x") or N/4 ("4x"), D_text]; slice b's h*w/16 (h*w/4) rows come first.

transformers runs all slices as one packed sequence with per-slice attention (``cu_seqlens``) and
``.tolist()`` loops that do not trace; here each slice is one batch row with a key mask, and the
per-slice tables (positions, window orders) are inputs computed with numpy, as llama.cpp's
minicpmv4_6 graph takes them (tools/mtmd/models/minicpmv.cpp). Per slice the math is transformers'.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...errors import CheckpointError
from . import DOWNSAMPLE_MODES


def _attention(attn: nn.Module, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Bidirectional multi-head attention of a MiniCPMV4_6VisionAttention's projections: [G, L, D] -> [G, L, D]."""
    g, n, d = x.shape
    heads = attn.num_heads
    q = attn.q_proj(x).view(g, n, heads, -1).transpose(1, 2)  # [G, H, L, hd]
    k = attn.k_proj(x).view(g, n, heads, -1).transpose(1, 2)
    v = attn.v_proj(x).view(g, n, heads, -1).transpose(1, 2)
    scores = torch.matmul(q, k.transpose(2, 3)) * attn.scaling  # [G, H, L, L]
    if bias is not None:
        scores = scores + bias  # [G, 1, 1, L]: padded keys get -inf-like
    probs = torch.softmax(scores, dim=-1)
    return attn.out_proj(torch.matmul(probs, v).transpose(1, 2).reshape(g, n, d))


def _gather_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x[b, index[b, i]] for every row: [B, N, D], [B, M] -> [B, M, D]."""
    return torch.gather(x, 1, index[:, :, None].expand(-1, -1, x.shape[-1]))


class WindowMergeVision(nn.Module):
    """The vision tower + merger of a ``MiniCPMV4_6Model`` (or 4_7) in one downsample mode."""

    def __init__(self, hf_model: nn.Module, downsample_mode: str):
        super().__init__()
        if downsample_mode not in DOWNSAMPLE_MODES:
            raise ValueError(f"downsample_mode {downsample_mode!r} is not one of {sorted(DOWNSAMPLE_MODES)}")
        model = hf_model.model
        self.tower = model.vision_tower  # embeddings, encoder.layers, vit_merger, post_layernorm
        self.merger = model.merger
        config = hf_model.config
        if config.merger_times != 1 or tuple(config.merge_kernel_size) != (2, 2):
            raise CheckpointError(f"MiniCPM-V merger with merger_times={config.merger_times}, merge_kernel_size="
                                  f"{config.merge_kernel_size}: edgevlm exports merger_times 1 with 2x2 kernels "
                                  "(as the published checkpoints and llama.cpp's minicpmv4_6 projector).")
        if tuple(self.tower.config.window_kernel_size) != (2, 2):
            raise CheckpointError(f"window_kernel_size {self.tower.config.window_kernel_size}: edgevlm exports 2x2.")
        self.use_window_merger = downsample_mode == "16x"
        self.insert_layer_id = int(self.tower.config.insert_layer_id)

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
        h = h + emb.position_embedding(position_ids)
        mask = patch_attention_mask
        for i, layer in enumerate(self.tower.encoder.layers):
            bias = (~mask).to(h.dtype)[:, None, None, :] * torch.finfo(h.dtype).min  # [B, 1, 1, N]
            h = self._encoder_layer(layer, h, bias)
            if self.use_window_merger and i == self.insert_layer_id:
                h = self._window_merger(h, window_index)  # [B, N/4, Dv]
                mask = mask[:, ::4]  # real patches are a prefix of N_b (a multiple of 16) positions
        h = self.tower.post_layernorm(h)
        groups = _gather_rows(h, merge_index).reshape(h.shape[0], -1, 4 * h.shape[-1])  # [B, M/4, 4*Dv]
        mlp = self.merger.mlp[0]  # MiniCPMV4_6DownsampleMLP; its forward flattens the batch
        return mlp.linear_2(mlp.act(mlp.linear_1(mlp.pre_norm(groups))))  # [B, M/4, D_text]


def derived_inputs(downsample_mode: str) -> dict[str, str]:
    """Graph input name -> the numpy table it takes (runtime/vision_inputs.py, runtime/vision_windows.py)."""
    tables = {"position_ids": "navit_position_ids", "merge_index": "window_index"}
    if downsample_mode == "16x":
        tables.update(window_index="window_index", merge_index="merge_index_after_window")
    return tables


def unpack_slices(pixel_values: "np.ndarray", tgt_sizes: "np.ndarray") -> list["np.ndarray"]:
    """The processor's packed [1, 3, p, sum(h*w)*p] pixels -> one [3, p, h*w*p] chunk per slice."""
    import numpy as np

    patch = pixel_values.shape[2]
    lengths = np.asarray(tgt_sizes).prod(axis=1) * patch
    return np.split(np.asarray(pixel_values)[0], np.cumsum(lengths)[:-1], axis=-1)


def graph_feeds(chunks: list["np.ndarray"], tgt_sizes: "np.ndarray", downsample_mode: str,
                patches_per_side: int) -> dict[str, "np.ndarray"]:
    """Inputs of the exported graph for a batch of chunks: padded pixels, mask and the numpy tables."""
    import numpy as np

    from ...processing.patchify import batch_chunks
    from ...runtime.vision_inputs import navit_position_ids
    from ...runtime.vision_windows import DERIVED

    tgt = np.asarray(tgt_sizes, dtype=np.int64)
    pixel_values, mask = batch_chunks(list(chunks), chunks[0].shape[1])
    n = mask.shape[1]
    compute = {"navit_position_ids": lambda: navit_position_ids(tgt, n, patches_per_side),
               **{kind: (lambda f=f: f(tgt, n, {})) for kind, f in DERIVED.items()}}
    feeds = {"pixel_values": pixel_values, "patch_attention_mask": mask}
    feeds.update({name: compute[kind]() for name, kind in derived_inputs(downsample_mode).items()})
    return feeds


def example_inputs(hf_model: nn.Module, downsample_mode: str, tgt_sizes: list[tuple[int, int]]) -> tuple:
    """Graph inputs for chunks of the given (h, w) patch grids (random pixels), built as the runtime would."""
    config = hf_model.config.vision_config
    patch = config.patch_size
    chunks = [torch.randn(3, patch, h * w * patch).numpy() for h, w in tgt_sizes]
    feeds = graph_feeds(chunks, tgt_sizes, downsample_mode, config.image_size // patch)
    window = feeds.get("window_index", feeds["position_ids"] * 0)
    return tuple(torch.from_numpy(x) for x in (feeds["pixel_values"], feeds["patch_attention_mask"],
                                                feeds["position_ids"], window, feeds["merge_index"]))


def export_vision(hf_model: nn.Module, path: str | Path, downsample_mode: str = "16x", dtype: str = "fp32"):
    """Export the vision part in ``downsample_mode`` to ``path`` (dynamic batch and patch count); returns its Part."""
    from ...export.onnx_common import export_module, io_spec
    from ...manifest import Part

    path = Path(path)
    graph = WindowMergeVision(hf_model, downsample_mode).float().eval()
    args = example_inputs(hf_model, downsample_mode, [(4, 8), (4, 4)])  # two sizes: padding is exercised
    names = ["pixel_values", "patch_attention_mask", "position_ids", "window_index", "merge_index"]
    dyn = {"pixel_values": {0: "batch", 3: "length"}, "patch_attention_mask": {0: "batch", 1: "patches"},
           "position_ids": {0: "batch", 1: "patches"}, "window_index": {0: "batch", 1: "patches"},
           "merge_index": {0: "batch", 1: "merge_tokens"}, "features": {0: "batch", 1: "tokens"}}
    if downsample_mode == "4x":  # the window merger is skipped: its table would be an unused input
        names.remove("window_index")
        dyn.pop("window_index")
        module: nn.Module = _Without4xWindow(graph)
        args = args[:3] + args[4:]
    else:
        module = graph
    export_module(module, args, path, names, ["features"], dyn, dtype)
    inputs, outputs = io_spec(path)
    config = hf_model.config.vision_config
    extra: dict[str, Any] = {
        "kind": "navit_window_merge", "downsample_mode": downsample_mode, "patch_size": config.patch_size,
        "patches_per_side": config.image_size // config.patch_size,
        "patches_per_token": DOWNSAMPLE_MODES[downsample_mode],  # a slice of h x w patches gives h*w/this tokens
        "derived_inputs": {k: v for k, v in derived_inputs(downsample_mode).items() if k in names}}
    if (path.parent / (path.name + ".data")).exists():
        extra["external_data"] = path.name + ".data"
    return Part(file=path.name, format="onnx", inputs=inputs, outputs=outputs, dtype=dtype, extra=extra)


class _Without4xWindow(nn.Module):
    def __init__(self, graph: WindowMergeVision):
        super().__init__()
        self.graph = graph

    def forward(self, pixel_values, patch_attention_mask, position_ids, merge_index):
        return self.graph(pixel_values, patch_attention_mask, position_ids, None, merge_index)
