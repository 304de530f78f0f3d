"""Per-tile vision features -> the feature rows of one anyres image (numpy; the runtime side).

The vision part returns the projected features of every tile, ``[1 + rows*cols, side*side, D]``
(base tile first, then the grid row-major). transformers' ``pack_image_features``
(modeling_llava_next.py / modeling_llava_onevision.py) then, per image:

1. lays the grid tiles out as one ``[rows*side, cols*side]`` map of D-vectors;
2. keeps ``anyres.unpad_box`` of it (drops the rows or columns that only saw padding);
3. OneVision: shrinks the map to ``plan.out_rows x plan.out_cols`` with bilinear interpolation
   (``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``) when it holds more
   than 1.1 x ``max_tiles`` tiles' worth of tokens;
4. appends the learned newline vector after every row and puts the base tile's tokens first.

A base-only plan (OneVision, several images in one prompt) is the base tile plus one newline.
"""

from __future__ import annotations

import numpy as np

from edgevlm.processing.anyres import AnyresPlan


def _source_index(out_size: int, in_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """torch's linear-interpolation taps (align_corners=False), in float32 as its CPU kernel computes them.

    Returns (low index, high index, weight of high) per output position.
    """
    scale = np.float32(in_size) / np.float32(out_size)
    src = scale * (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5)  # [out]
    src = np.maximum(src, np.float32(0.0))
    low = src.astype(np.int64)  # floor (src >= 0)
    high = np.minimum(low + 1, in_size - 1)
    return low, high, (src - low.astype(np.float32)).astype(np.float32)


def resize_bilinear(grid: np.ndarray, out_rows: int, out_cols: int) -> np.ndarray:
    """``[H, W, D]`` -> ``[out_rows, out_cols, D]``, bilinear, half-pixel centres, no antialiasing."""
    rows, cols = grid.shape[:2]
    r0, r1, wr = _source_index(out_rows, rows)
    c0, c1, wc = _source_index(out_cols, cols)
    wr, wc = wr[:, None, None], wc[None, :, None]
    top = grid[r0][:, c0] * (1 - wc) + grid[r0][:, c1] * wc  # [out_rows, out_cols, D]
    bottom = grid[r1][:, c0] * (1 - wc) + grid[r1][:, c1] * wc
    return (top * (1 - wr) + bottom * wr).astype(grid.dtype)


def pack_anyres_features(tile_features: np.ndarray, plan: AnyresPlan, newline: np.ndarray) -> np.ndarray:
    """``[n_chunks, side*side, D]`` -> ``[plan.n_tokens, D]``, in the order the prompt's image tokens take."""
    side, dim = plan.feature_side, tile_features.shape[-1]
    if tile_features.shape[:2] != (plan.n_chunks, side * side):
        raise ValueError(f"expected features [{plan.n_chunks}, {side * side}, D] for this image, "
                         f"got {list(tile_features.shape)}")
    base = tile_features[0]  # [side*side, D]
    newline = newline.astype(tile_features.dtype).reshape(1, dim)
    if plan.grid_rows == 0:
        return np.concatenate([base, newline])
    rows, cols = plan.grid_rows, plan.grid_cols
    grid = tile_features[1:].reshape(rows, cols, side, side, dim)  # [tile row, tile col, y, x, D]
    grid = grid.transpose(0, 2, 1, 3, 4).reshape(rows * side, cols * side, dim)  # [Y, X, D]
    grid = grid[plan.unpad_top : plan.unpad_top + plan.unpad_rows, plan.unpad_left : plan.unpad_left + plan.unpad_cols]
    if plan.pooled:
        grid = resize_bilinear(grid, plan.out_rows, plan.out_cols)
    ends = np.broadcast_to(newline, (grid.shape[0], 1, dim))
    rows_with_newline = np.concatenate([grid, ends], axis=1)  # [out_rows, out_cols + 1, D]
    return np.concatenate([base, rows_with_newline.reshape(-1, dim)])
