"""Per-image tables of a packed native-resolution ViT (Qwen2-VL / Qwen2.5-VL vision), as numpy data.

The vision tower runs all patches of all images as one sequence ``[N, ...]``; what makes one image
differ from another is data that depends on each image's grid: the 2-D rotary angles of every patch,
which patches may attend to each other (one image; for 2.5's windowed blocks, one window), and 2.5's
window order. transformers computes these with per-image Python loops (``vision_utils``), which do
not trace; here they are plain numpy, computed by the runtime and fed to the exported graph.

Graph inputs made here (N patches in total, U = merge_size**2 patches per merged token):
- ``rotary_cos``, ``rotary_sin`` float32 [N, head_dim]: in attention order (see below).
- ``attention_segments`` int64 [N]: the frame each token belongs to (full-attention blocks attend
  within equal ids; a still image is one frame); equals transformers' ``cu_seqlens``.
- windowed towers only: ``window_segments`` int64 [N], the window of each token (``cu_window_seqlens``);
  ``window_index`` int64 [N/U], the merged-token order the blocks see; ``reverse_index`` int64 [N/U],
  its inverse, which puts the merger's output rows back in raster-block order.
Attention order is the patch order the blocks see: the processor's merge-block order, or for
windowed towers that order permuted by ``window_index`` (whole merge units move together).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Grid = tuple[int, int, int]  # (t, h, w) in patches


@dataclass(frozen=True)
class PackedViTSpec:
    """What the tables depend on besides the grids (from the vision config)."""

    head_dim: int
    rope_theta: float = 10000.0
    merge_size: int = 2
    window_tokens: int | None = None  # merged tokens per window side (2.5: 112 px / 14 / 2 = 4); None: no windows

    @classmethod
    def from_params(cls, params: dict) -> "PackedViTSpec":
        """From the manifest's vision params (what families/qwen2_vl/vision.py records)."""
        window = params.get("window_tokens")
        return cls(int(params["head_dim"]), float(params["rope_theta"]), int(params["merge_size"]),
                   None if window is None else int(window))


def _grids(grids) -> list[Grid]:
    return [tuple(int(v) for v in grid) for grid in grids]


def vision_position_ids(grids, merge_size: int) -> np.ndarray:
    """int64 [N, 2]: (row, col) of every patch, patches in merge-block order, frames repeated.

    Same as transformers' ``vision_utils.get_vision_position_ids`` (include_temporal=False).
    """
    out = []
    for t, h, w in _grids(grids):
        rows, cols = np.meshgrid(np.arange(h, dtype=np.int64), np.arange(w, dtype=np.int64), indexing="ij")
        block = (h // merge_size, merge_size, w // merge_size, merge_size)
        rows = rows.reshape(block).transpose(0, 2, 1, 3).reshape(-1)  # [h*w] merge-block order
        cols = cols.reshape(block).transpose(0, 2, 1, 3).reshape(-1)
        out.append(np.tile(np.stack([rows, cols], axis=-1), (t, 1)))  # [t*h*w, 2]
    return np.concatenate(out, axis=0)


def rotary_inv_freq(head_dim: int, theta: float) -> np.ndarray:
    """float32 [head_dim // 4]: the axial rotary frequencies (float32 arithmetic as the reference)."""
    spatial = head_dim // 2
    exponent = np.arange(0, spatial, 2, dtype=np.float32) / np.float32(spatial)  # [head_dim/4]
    return (np.float32(1.0) / (np.float32(theta) ** exponent)).astype(np.float32)


def rotary_cos_sin(positions: np.ndarray, head_dim: int, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """float32 [N, head_dim] each: angles (row * f, col * f) concatenated, then the halves repeated."""
    inv_freq = rotary_inv_freq(head_dim, theta)  # [F]
    angles = positions.astype(np.float32)[:, :, None] * inv_freq[None, None, :]  # [N, 2, F]
    angles = angles.reshape(positions.shape[0], -1)  # [N, 2F] = (rows' F, cols' F)
    angles = np.concatenate([angles, angles], axis=-1)  # [N, head_dim]
    return np.cos(angles), np.sin(angles)


def frame_segments(grids) -> np.ndarray:
    """int64 [N]: a distinct id per frame of every image (one frame per still image)."""
    sizes = [h * w for t, h, w in _grids(grids) for _ in range(t)]
    return np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)


def window_order(grids, merge_size: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    """2.5's windows: ``window_index`` int64 [N/U] and ``window_segments`` int64 [N] (attention order).

    A window is ``side`` merged tokens on a side (window_size / patch_size / merge_size), tiled from
    the top-left corner (the last row / column of windows may be partial); merged tokens are taken
    window by window, raster order inside each. Same as ``vision_utils.get_vision_window_index``.
    """
    unit = merge_size * merge_size
    index_parts, window_sizes, offset = [], [], 0
    for t, h, w in _grids(grids):
        rows, cols = h // merge_size, w // merge_size
        n_wr, n_wc = -(-rows // side), -(-cols // side)  # windows per column / row
        ids = np.arange(t * rows * cols, dtype=np.int64).reshape(t, rows, cols)
        for frame in range(t):
            for wr in range(n_wr):
                for wc in range(n_wc):
                    cell = ids[frame, wr * side:(wr + 1) * side, wc * side:(wc + 1) * side].reshape(-1)
                    index_parts.append(cell + offset)
                    window_sizes.append(cell.size * unit)
        offset += t * rows * cols
    window_index = np.concatenate(index_parts)
    segments = np.repeat(np.arange(len(window_sizes), dtype=np.int64), window_sizes)
    return window_index, segments


def packed_vit_inputs(grids, spec: PackedViTSpec, padded_to: int | None = None) -> dict[str, np.ndarray]:
    """All derived graph inputs for images with these grids (see the module docstring).

    ``padded_to``: the patch count of a fixed-shape graph (Core ML's enumerated counts) when the
    patches are fewer; the padding (a multiple of U patches after the real ones) gets zero rotary
    rows, a segment of its own in every mask (no real patch attends to it), and identity window
    order, so its feature rows come out after the real ones and are dropped."""
    positions = vision_position_ids(grids, spec.merge_size)  # [N, 2]
    cos, sin = rotary_cos_sin(positions, spec.head_dim, spec.rope_theta)  # [N, head_dim] each
    tables = {"attention_segments": frame_segments(grids)}
    unit = spec.merge_size * spec.merge_size
    if spec.window_tokens:
        window_index, window_segments = window_order(grids, spec.merge_size, spec.window_tokens)
        patch_order = (window_index[:, None] * unit + np.arange(unit)).reshape(-1)  # [N] patch-level gather
        cos, sin = cos[patch_order], sin[patch_order]
        # the permutation stays inside each image, so frame ids per position are unchanged
        tables.update(window_segments=window_segments, window_index=window_index,
                      reverse_index=np.argsort(window_index).astype(np.int64))
    tables.update(rotary_cos=np.ascontiguousarray(cos), rotary_sin=np.ascontiguousarray(sin))
    if padded_to is not None and padded_to > len(cos):
        tables = _pad(tables, len(cos), int(padded_to), unit)
    return tables


def _pad(tables: dict[str, np.ndarray], real: int, total: int, unit: int) -> dict[str, np.ndarray]:
    if (total - real) % unit:
        raise ValueError(f"padding {real} patches to {total} is not a whole number of {unit}-patch tokens")
    out = {}
    for name, table in tables.items():
        if name.startswith("rotary"):
            out[name] = np.concatenate([table, np.zeros((total - real, table.shape[1]), table.dtype)])
        elif name.endswith("segments"):
            out[name] = np.concatenate([table, np.full(total - real, table.max() + 1, np.int64)])
        else:  # window_index / reverse_index over merged tokens: padding stays in place
            out[name] = np.concatenate([table, np.arange(real // unit, total // unit, dtype=np.int64)])
    return out
