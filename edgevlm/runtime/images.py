"""From a user's image to what a backend's vision part takes, selected by the manifest's processor kind."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..processing.config import ProcessorConfig
from ..processing.preprocess import preprocess_fixed, preprocess_slices
from ..processing.slicing import Grid, plan_slices


@dataclass
class PreparedImage:
    inputs: dict[str, np.ndarray]  # what Backend.encode_images takes
    grid: Grid | None  # slice grid [cols, rows] (None: not sliced or a fixed-size processor)
    n_chunks: int


def grid_of(image: Image.Image, cfg: ProcessorConfig) -> Grid | None:
    """The slice grid without touching pixels (token counts are known before any heavy work)."""
    if cfg.kind != "slice":
        return None
    return plan_slices(image.size, cfg.max_slice_nums, cfg.scale_resolution, cfg.patch_size, cfg.never_split).grid


def prepare_image(image: Image.Image, cfg: ProcessorConfig) -> PreparedImage:
    if cfg.kind == "slice":
        sliced = preprocess_slices(image, cfg)
        pixel_values, patch_mask = sliced.batched()  # [n, 3, p, L_max], [n, L_max/p]
        inputs = {"pixel_values": pixel_values, "patch_attention_mask": patch_mask, "tgt_sizes": sliced.tgt_sizes}
        return PreparedImage(inputs, sliced.grid, sliced.n_chunks)
    pixels = preprocess_fixed(image, cfg)  # [3, S, S]
    return PreparedImage({"pixel_values": pixels[None]}, None, 1)
