"""LLaVA-UHD slicing whose chunks merge patches into feature rows (processor kind ``slice_merge``).

The slicing is ``slicing.py``'s with every size aligned to ``resize_align`` pixels; the vision part
then merges each m x m block of a chunk's patch grid into one feature row, so an h x w chunk gives
h*w / m^2 rows: the overview and the slices of one image need not give the same count, and the
prompt's placeholder runs use each chunk's own count (a window-merging ViT such as MiniCPM-V 4.6's:
``ProcessorConfig.options["patches_per_token"]`` = m^2, 16 or 4).

The plan also carries, in merged units, each chunk's grid (``data["canvas"]``): what a canvas
M-RoPE layout (processing/canvas_rope.py) places the image's tokens by.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ImageError
from .config import ProcessorConfig
from .plan import ImagePlan
from .slicing import plan_slices


def patches_per_token(cfg: ProcessorConfig) -> int:
    value = int(cfg.options.get("patches_per_token", 0))
    side = math.isqrt(value)
    if value < 1 or side * side != value:
        raise ImageError(f"processor option patches_per_token {value!r} is not a square merge (4, 16 ...); "
                         "re-export the bundle")
    return value


def chunk_grids(size: tuple[int, int], cfg: ProcessorConfig) -> tuple[list[int] | None, list[tuple[int, int]]]:
    """(slice grid [cols, rows] or None, (h, w) patches of every chunk: the overview, then slices row-major)."""
    plan = plan_slices(size, cfg.max_slice_nums, cfg.scale_resolution, cfg.resize_align or cfg.patch_size,
                       cfg.never_split)
    p = cfg.patch_size
    grids = [(plan.overview_size[1] // p, plan.overview_size[0] // p)]
    if plan.grid is not None:
        grids += [(plan.slice_size[1] // p, plan.slice_size[0] // p)] * plan.n_slices
    return plan.grid, grids


def plan_merged(size: tuple[int, int], cfg: ProcessorConfig, tokens_per_chunk: int = 0, n_images: int = 1) -> ImagePlan:
    """The chunks' feature rows from the image size alone (``tokens_per_chunk`` is unused: each chunk has its own)."""
    merge = patches_per_token(cfg)
    side = math.isqrt(merge)
    grid, grids = chunk_grids(size, cfg)
    for h, w in grids:
        if h % side or w % side:
            raise ImageError(f"a {h}x{w}-patch chunk cannot be merged {side}x{side}: the bundle's resize_align "
                             f"{cfg.resize_align} should be patch_size x {side}; re-export the bundle")
    tokens = [h * w // merge for h, w in grids]
    canvas = [[h // side, w // side] for h, w in grids]
    return ImagePlan(None if grid is None else (int(grid[0]), int(grid[1])), tokens[0], tuple(tokens[1:]),
                     {"canvas": canvas})


def pack_merged(features: np.ndarray, plan: ImagePlan) -> np.ndarray:
    """The vision part's output [n_chunks, max_rows, hidden] (chunks padded to the longest) -> the rows of
    every chunk in prompt order [K, hidden]."""
    counts = (plan.overview_tokens, *plan.slice_tokens)
    if len(features) != len(counts):
        raise ImageError(f"the vision part gave {len(features)} chunks for an image planned as {len(counts)}")
    return np.concatenate([features[i, :n] for i, n in enumerate(counts)])
