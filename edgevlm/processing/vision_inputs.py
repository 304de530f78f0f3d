"""Vision-graph inputs that the runtime computes with numpy from each chunk's patch grid ``tgt_sizes``
(for packed-patch towers: the images' ``grid_thw``).

Some vision towers take tables that depend on a chunk's (h, w) grid through bucketing or per-chunk
tables that do not trace into a graph. The graph takes them as inputs instead; the manifest's
vision section names which graph input is which kind (``derived_inputs``) and carries the
parameters, so the backends stay model-agnostic. No torch here: this runs at inference time, and the
PyTorch references use these same functions (they are the definition, see DESIGN.md).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from .packed_vit import PackedViTSpec, packed_vit_inputs


def bucketed_position_ids(tgt_sizes: np.ndarray, max_patches: int, per_side: int) -> np.ndarray:
    """Rows of a learned per_side x per_side position table per patch, int64 [B, max_patches] (padding rows 0).

    Patch (i, j) of an h x w grid gets floor(per_side*i/h) * per_side + floor(per_side*j/w): the exact
    bucket of i/h among the boundaries k/per_side. Upstream computes it with a float32 arange, which
    rounds i/h just below the boundary at some exact ties (DESIGN.md, "Navit position buckets"); the
    integer form is the definition here, in the reference and in the Android core.
    """
    out = np.zeros((len(tgt_sizes), max_patches), dtype=np.int64)
    for b, (h, w) in enumerate(np.asarray(tgt_sizes).tolist()):
        rows = per_side * np.arange(h) // h  # [h]
        cols = per_side * np.arange(w) // w  # [w]
        out[b, : h * w] = (rows[:, None] * per_side + cols[None, :]).reshape(-1)
    return out


def sincos_2d(height: int, width: int, dim: int) -> np.ndarray:
    """A 2D sin/cos table, float32 [height, width, dim]: concat(emb(col), emb(row)).

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


def sincos_2d_keys(tgt_sizes: np.ndarray, dim: int, max_patches: int) -> np.ndarray:
    """Per-chunk 2D sin/cos rows of every patch, zero-padded: float32 [B, max_patches, dim]."""
    out = np.zeros((len(tgt_sizes), max_patches, dim), dtype=np.float32)
    for b, (h, w) in enumerate(np.asarray(tgt_sizes).tolist()):
        out[b, : h * w] = sincos_2d(h, w, dim).reshape(h * w, dim)
    return out


@lru_cache(maxsize=8)
def _packed_tables(grids: tuple, patches: int, params: tuple) -> dict[str, np.ndarray]:
    """Every packed-ViT table of one vision call, computed once for all the inputs that need one
    (the arrays are shared: callers must not write into them)."""
    return packed_vit_inputs(grids, PackedViTSpec.from_params(dict(params)), padded_to=patches)


def packed_table(name: str):
    """The derived-input function of one packed-ViT table (processing/packed_vit.py): from the call's
    images' grid_thw [n, 3], its patch count (> the real one when padded) and the vision params."""
    return lambda grids, n, vision: _packed_tables(tuple(map(tuple, np.asarray(grids).tolist())), int(n),
                                                   tuple(sorted(vision.items())))[name]


PACKED_TABLES = ("rotary_cos", "rotary_sin", "attention_segments", "window_segments", "window_index", "reverse_index")


def window_order(h: int, w: int) -> np.ndarray:
    """Row-major indices of an h x w grid listed 2x2 window by window, int64 [h*w] (h and w even).

    Windows go row-major, the 4 cells of a window row-major: gathering a grid's rows by this table and
    reshaping to [h*w/4, 4, D] gives the windows, and the merged cells form the (h/2) x (w/2) grid in
    row-major order (transformers' ``get_vision_window_index`` with window 2; llama.cpp's
    ``vit_merger_window_idx`` / ``merger_ds_idx``).
    """
    if h % 2 or w % 2:
        raise ValueError(f"a {h}x{w} patch grid cannot be merged in 2x2 windows: both sides must be even")
    return np.arange(h * w, dtype=np.int64).reshape(h // 2, 2, w // 2, 2).transpose(0, 2, 1, 3).reshape(-1)


def window_orders(tgt_sizes: np.ndarray, max_patches: int, shrink: int = 1) -> np.ndarray:
    """Per-chunk 2x2-window gather tables, int64 [B, max_patches]; identity past each chunk's cells.

    ``shrink`` 2: the table of the grid left after one 2x2 merge ((h/2) x (w/2) cells, a prefix of the
    row). Identity on padding keeps padded rows at the end, so a window never mixes real and padded rows.
    """
    out = np.tile(np.arange(max_patches, dtype=np.int64), (len(tgt_sizes), 1))
    for b, (h, w) in enumerate(np.asarray(tgt_sizes).tolist()):
        if h % shrink or w % shrink:
            raise ValueError(f"patch grid {h}x{w} is not divisible by {shrink}")
        out[b, : (h // shrink) * (w // shrink)] = window_order(h // shrink, w // shrink)
    return out


# derived-input kind (manifest) -> how to compute it from (tgt_sizes or grids, max_patches, vision section)
DERIVED = {
    "bucketed_position_ids": lambda tgt, n, vision: bucketed_position_ids(tgt, n, int(vision["position_table_side"])),
    "sincos_2d_keys": lambda tgt, n, vision: sincos_2d_keys(tgt, int(vision["key_pos_dim"]), n),
    **{f"packed_{name}": packed_table(name) for name in PACKED_TABLES},
    "window_order_2x2": lambda tgt, n, vision: window_orders(tgt, n, 1),
    "window_order_2x2_after_merge": lambda tgt, n, vision: window_orders(tgt, n, 2),
}


# derived-input kind -> the vision-section parameters it reads (checked when a manifest is read)
PARAMETERS = {"bucketed_position_ids": ("position_table_side",), "sincos_2d_keys": ("key_pos_dim",),
              "window_order_2x2": (), "window_order_2x2_after_merge": (),
              **{f"packed_{name}": ("head_dim", "rope_theta", "merge_size", "window_tokens") for name in PACKED_TABLES}}


def derived_inputs(spec: dict[str, str], tgt_sizes: np.ndarray, max_patches: int,
                   vision: dict[str, Any]) -> dict[str, np.ndarray]:
    """{graph input name: array} for every derived input a vision part declares."""
    return {name: DERIVED[kind](tgt_sizes, max_patches, vision) for name, kind in spec.items()}
