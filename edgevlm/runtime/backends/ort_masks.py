"""Additive attention masks for the ONNX decoder, built with numpy from block ids.

allowed(q, k) = (k <= q or (block[q] == block[k] and block[q] >= 0)) and (window is None or q - k < window)

which is transformers' composition for every family: causal OR blockwise (a prefix-LM's prefix, an
image block), AND the sliding window on local layers. Positions are absolute cache rows.
"""

from __future__ import annotations

import numpy as np


def attention_bias(blocks: np.ndarray, start: int, length: int, window: int | None, mask_value: float,
                   out: np.ndarray | None = None, first_key: int = 0) -> np.ndarray:
    """Mask rows for queries at cache rows [start, start+length) over keys [first_key, start+length).

    blocks: int32 [>= start+length] block id of every cache row (-1 = causal only).
    Returns float32 [1, 1, length, start+length-first_key] (written into ``out`` when given).
    """
    total = start + length
    q = np.arange(start, total)[:, None]  # [T, 1]
    k = np.arange(first_key, total)[None, :]  # [1, S]
    allowed = k <= q
    qb = blocks[start:total][:, None]
    if (qb >= 0).any():
        allowed |= (qb == blocks[None, first_key:total]) & (qb >= 0)
    if window is not None:
        allowed &= (q - k) < window
    if out is None:
        out = np.empty((1, 1, length, total - first_key), dtype=np.float32)
    np.copyto(out[0, 0], np.where(allowed, np.float32(0.0), np.float32(mask_value)))
    return out


def first_visible_key(start: int, window: int | None) -> int:
    """The first cache row any query at row >= ``start`` may see: rows before it are masked for every
    query (q - k < window), so a sliding layer reads only [first_visible_key, start+length)."""
    return 0 if window is None else max(0, start - window + 1)
