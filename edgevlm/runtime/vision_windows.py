"""Numpy-only gather tables for vision graphs that merge 2x2 windows of patches into one token.

A navit chunk is an h x w grid of patches stored row-major. Merging each 2x2 window into one token
(a window-attention merger, then an MLP over the 4 concatenated patches; or an MLP merger alone)
needs the patches of a window next to each other: ``window_order(h, w)`` lists the grid's patches
window by window (windows row-major, the 4 patches of a window row-major). Gathering by it and
reshaping to [h*w/4, 4, D] gives the windows; the merged tokens then form the (h/2) x (w/2) grid in
row-major order. This is the order of transformers' ``get_vision_window_index`` with window 2 and of
the ``view(h/2, 2, w/2, 2, D).permute(0, 2, 1, 3, 4)`` merges; the graph takes the table as an input
because it depends on each chunk's (h, w).

Chunks of a batch are zero-padded to the longest; padded positions map to themselves, so padding
stays at the end of every row and groups of 4 never mix real and padded patches (h*w is a multiple
of 4 at every merge round).
"""

from __future__ import annotations

import numpy as np


def window_order(h: int, w: int) -> np.ndarray:
    """Row-major indices of an h x w grid in 2x2-window order, int64 [h*w] (h and w even)."""
    if h % 2 or w % 2:
        raise ValueError(f"a {h}x{w} patch grid cannot be merged in 2x2 windows: both sides must be even")
    return np.arange(h * w, dtype=np.int64).reshape(h // 2, 2, w // 2, 2).transpose(0, 2, 1, 3).reshape(-1)


def window_index(tgt_sizes: np.ndarray, max_tokens: int, shrink: int = 1) -> np.ndarray:
    """Per-chunk 2x2-window gather table, int64 [B, max_tokens]; identity on padded positions.

    ``shrink`` divides each chunk's (h, w) first: 1 for the patch grid itself, 2 for the grid left
    after one 2x2 merge (the table of a second merge round).
    """
    out = np.tile(np.arange(max_tokens, dtype=np.int64), (len(tgt_sizes), 1))
    for b, (h, w) in enumerate(np.asarray(tgt_sizes).tolist()):
        if h % shrink or w % shrink:
            raise ValueError(f"patch grid {h}x{w} is not divisible by {shrink}")
        h, w = h // shrink, w // shrink
        if h * w > max_tokens:
            raise ValueError(f"patch grid {h}x{w} does not fit {max_tokens} positions")
        out[b, : h * w] = window_order(h, w)
    return out


# name in a vision part's ``derived_inputs`` -> how to compute it from (tgt_sizes, max_patches, extra)
DERIVED = {
    "window_index": lambda tgt, n, extra: window_index(tgt, n, 1),
    "merge_index_after_window": lambda tgt, n, extra: window_index(tgt, n // 4, 2),
}
