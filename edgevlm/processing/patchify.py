"""The navit ``[3, patch, L]`` packing of MiniCPM-V chunks, and padding chunks into one batch.

``reshape_by_patch`` lays the ``patch x patch`` patches of a ``[3, H, W]`` image side by side in
raster order, so a Conv2d(k=p, s=p) over ``[3, p, L]`` yields the patch tokens in raster order and
chunks of different sizes batch as one zero-padded ``[B, 3, p, L_max]`` tensor.
"""

from __future__ import annotations

import numpy as np


def reshape_by_patch(image_chw: np.ndarray, patch_size: int) -> np.ndarray:
    """``[C, H, W]`` (H, W multiples of p) -> ``[C, p, (H/p)*(W/p)*p]``; works on any dtype.

    ``out[c, y, k*p + dx] = image[c, i*p + y, j*p + dx]`` with ``k = i*(W/p) + j``.
    """
    channels, height, width = image_chw.shape
    p = patch_size
    rows, cols = height // p, width // p
    blocks = image_chw.reshape(channels, rows, p, cols, p)  # [C, i, y, j, dx]
    return blocks.transpose(0, 2, 1, 3, 4).reshape(channels, p, rows * cols * p)  # [C, y, (i, j, dx)]


def hwc_to_patch_layout(image_hwc: np.ndarray, patch_size: int) -> np.ndarray:
    """``[H, W, C]`` -> strided view ``[C, p, rows, cols, p]`` ordered like ``reshape_by_patch``.

    No copy: the normalisation pass writes the packed float array in one go from this view.
    """
    height, width, channels = image_hwc.shape
    p = patch_size
    blocks = image_hwc.reshape(height // p, p, width // p, p, channels)  # [i, y, j, dx, C]
    return blocks.transpose(4, 1, 0, 2, 3)  # [C, y, i, j, dx]


def batch_chunks(chunks: list[np.ndarray], patch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad ``[3, p, L_i]`` chunks into one batch.

    Returns ``pixel_values`` float32 ``[n, 3, p, L_max]`` and ``patch_attention_mask`` bool
    ``[n, L_max // p]`` (True for the real patches of each chunk).
    """
    n = len(chunks)
    lengths = [chunk.shape[-1] for chunk in chunks]
    l_max = max(lengths) if chunks else 0
    pixel_values = np.zeros((n, 3, patch_size, l_max), dtype=np.float32)  # [n, 3, p, L_max]
    mask = np.zeros((n, l_max // patch_size), dtype=bool)  # [n, L_max/p]
    for index, (chunk, length) in enumerate(zip(chunks, lengths)):
        pixel_values[index, :, :, :length] = chunk
        mask[index, : length // patch_size] = True
    return pixel_values, mask
