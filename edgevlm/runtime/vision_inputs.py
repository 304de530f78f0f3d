"""Numpy-only derived inputs of the MiniCPM-V vision graph, computed per chunk from ``tgt_sizes``.

The vision graph takes these as inputs instead of computing them, because they depend on each
chunk's patch grid (h, w) through bucketing and per-chunk tables that do not trace into ONNX.
The vision part's manifest entry names which derived input is which (``extra["derived_inputs"]``),
so the backend stays family-agnostic. No torch here: this runs at inference time.
"""

from __future__ import annotations

import numpy as np


def navit_position_ids(tgt_sizes: np.ndarray, max_patches: int, per_side: int) -> np.ndarray:
    """Rows of the learned position table per patch, int64 [B, max_patches] (padding rows 0).

    Patch (i, j) of an h x w grid gets floor(per_side*i/h) * per_side + floor(per_side*j/w): the exact
    bucket of i/h among the boundaries k/per_side (see families/minicpmv.navit_position_ids for why
    the integer form, not upstream's float32 arange, is the definition).
    """
    out = np.zeros((len(tgt_sizes), max_patches), dtype=np.int64)
    for b, (h, w) in enumerate(np.asarray(tgt_sizes).tolist()):
        rows = per_side * np.arange(h) // h  # [h]
        cols = per_side * np.arange(w) // w  # [w]
        out[b, : h * w] = (rows[:, None] * per_side + cols[None, :]).reshape(-1)
    return out


def sincos_2d(height: int, width: int, dim: int) -> np.ndarray:
    """The resampler's 2D sin/cos key table, float32 [height, width, dim]: concat(emb(col), emb(row)).

    omega[k] = 1 / 10000^(k / (dim/4)); emb(p) = [sin(p*omega), cos(p*omega)] (techspec §1.7).
    """
    quarter = dim // 4
    omega = 1.0 / 10000 ** (np.arange(quarter, dtype=np.float64) / quarter)  # [dim/4]
    cols = np.arange(width, dtype=np.float64)[:, None] * omega[None, :]  # [W, dim/4]
    rows = np.arange(height, dtype=np.float64)[:, None] * omega[None, :]  # [H, dim/4]
    col_emb = np.concatenate([np.sin(cols), np.cos(cols)], axis=1)  # [W, dim/2]
    row_emb = np.concatenate([np.sin(rows), np.cos(rows)], axis=1)  # [H, dim/2]
    table = np.concatenate([np.broadcast_to(col_emb[None], (height, width, dim // 2)),
                            np.broadcast_to(row_emb[:, None], (height, width, dim // 2))], axis=2)
    return table.astype(np.float32)


def resampler_key_pos(tgt_sizes: np.ndarray, dim: int, max_patches: int) -> np.ndarray:
    """Per-chunk key position embeddings, zero-padded: float32 [B, max_patches, dim]."""
    out = np.zeros((len(tgt_sizes), max_patches, dim), dtype=np.float32)
    for b, (h, w) in enumerate(np.asarray(tgt_sizes).tolist()):
        out[b, : h * w] = sincos_2d(h, w, dim).reshape(h * w, dim)
    return out


# name in the manifest's ``derived_inputs`` -> how to compute it from (tgt_sizes, max_patches, extra)
DERIVED = {
    "navit_position_ids": lambda tgt, n, extra: navit_position_ids(tgt, n, int(extra["patches_per_side"])),
    "resampler_key_pos": lambda tgt, n, extra: resampler_key_pos(tgt, int(extra["embed_dim"]), n),
}


def derived_inputs(spec: dict[str, str], tgt_sizes: np.ndarray, max_patches: int, extra: dict) -> dict[str, np.ndarray]:
    """{graph input name: array} for every derived input a vision part declares."""
    return {name: DERIVED[kind](tgt_sizes, max_patches, extra) for name, kind in spec.items()}
