"""Feeding a packed-patch vision part (vision kind ``packed_patches``: Qwen2-VL style native resolution).

The processor gives every image's patch rows concatenated, ``pixel_values`` [sum N_i, C*T*p*p], and
their grids ``image_grid_thw`` [n, 3] (transformers' processor layout). The part takes images of ONE
grid as a batch, [B, N, C*T*p*p], with that grid's tables as derived inputs (processing/packed_vit.py):
images are grouped by grid and each group runs in batches, so attention never spans two images and
no compute goes to padding. A part with fixed shapes (Core ML: enumerated patch counts) gets each
image padded to the smallest count that holds it; the padding is masked out and its rows dropped.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ...errors import ImageError
from ...processing.vision_inputs import derived_inputs
from .vision_batch import BATCH_PATCHES, chunks_per_run


def smallest_fitting(sizes: list[int], n: int, fix: str) -> int:
    """The smallest enumerated patch count that holds n patches (a fixed-shape vision part); ``fix`` says
    what to do when none does."""
    for size in sorted(sizes):
        if size >= n:
            return size
    raise ImageError(f"an image chunk has {n} patches, more than the largest vision shape this bundle was "
                     f"exported with ({max(sizes)}); {fix}.")


def encode_packed(run: Callable[[dict[str, np.ndarray]], np.ndarray], inputs: dict[str, np.ndarray], vision: Any,
                  derived: dict[str, str], max_batch: int, sizes: list[int] | None = None,
                  int32: bool = False, batch_patches: int = BATCH_PATCHES) -> np.ndarray:
    """Processor outputs -> features float32 [1, sum K_i, hidden]: every image's rows, in image order.

    ``run(feeds)`` runs the part once -> [B, K, hidden]; ``sizes``: the enumerated patch counts of a
    fixed-shape part (None: any length); ``int32``: integer inputs as int32 (Core ML); ``batch_patches``:
    at most this many patches per run (vision_batch.py)."""
    pixels = np.asarray(inputs["pixel_values"], np.float32)  # [sum N_i, P]
    grids = np.asarray(inputs["image_grid_thw"], np.int64).reshape(-1, 3)  # [n, 3]
    counts = grids.prod(axis=1)
    starts = np.concatenate([[0], np.cumsum(counts)])
    if starts[-1] != len(pixels):
        raise ImageError(f"pixel_values has {len(pixels)} patch rows but the grids {grids.tolist()} need "
                         f"{int(starts[-1])}; pass the processor's outputs unchanged")
    unit = int(vision.params["merge_size"]) ** 2
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, grid in enumerate(grids.tolist()):
        groups.setdefault(tuple(grid), []).append(i)
    result: list[np.ndarray | None] = [None] * len(grids)
    for grid, members in groups.items():
        real = int(np.prod(grid))
        n = real if sizes is None else smallest_fitting(
            sizes, real, f"lower max_pixels (at most {max(sizes) * int(vision.patch_size) ** 2} here) or re-export with larger --slice-patches")
        tables = derived_inputs(derived, np.array([grid]), n, vision.params)
        if int32:
            tables = {k: v.astype(np.int32) if v.dtype == np.int64 else v for k, v in tables.items()}
        step = chunks_per_run(max_batch, n, batch_patches)
        for first in range(0, len(members), step):
            batch = members[first:first + step]
            rows = np.zeros((len(batch), n, pixels.shape[1]), np.float32)  # [B, n, P]
            for j, i in enumerate(batch):
                rows[j, :real] = pixels[starts[i]:starts[i + 1]]
            out = run({"pixel_values": rows, **tables})  # [B, n/U, hidden]
            for j, i in enumerate(batch):
                result[i] = out[j, : real // unit]
    return np.concatenate(result, axis=0)[None].astype(np.float32)
