"""From a user's image to what a backend's vision part takes, selected by the manifest's processor kind.

Each processor kind (an algorithm, named in the manifest's ``processor.kind``) gives two functions:
``grid(image, cfg)``, the layout of the image's chunks computed from its size alone (so a prompt's
token count is known before any pixel work), and ``prepare(image, cfg)``, the vision part's inputs.
A new kind is one entry in ``KINDS`` plus its algorithm in edgevlm/processing/.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

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


def _slice_grid(image: Image.Image, cfg: ProcessorConfig) -> Grid | None:
    return plan_slices(image.size, cfg.max_slice_nums, cfg.scale_resolution, cfg.resize_align or cfg.patch_size,
                       cfg.never_split).grid


def _slice_prepare(image: Image.Image, cfg: ProcessorConfig) -> PreparedImage:
    sliced = preprocess_slices(image, cfg)
    pixel_values, patch_mask = sliced.batched()  # [n, 3, p, L_max], [n, L_max/p]
    inputs = {"pixel_values": pixel_values, "patch_attention_mask": patch_mask, "tgt_sizes": sliced.tgt_sizes}
    return PreparedImage(inputs, sliced.grid, sliced.n_chunks)


def _fixed_prepare(image: Image.Image, cfg: ProcessorConfig) -> PreparedImage:
    pixels = preprocess_fixed(image, cfg)  # [3, S, S]
    return PreparedImage({"pixel_values": pixels[None]}, None, 1)


KINDS: dict[str, tuple[Callable[[Image.Image, ProcessorConfig], Any], Callable[[Image.Image, ProcessorConfig],
                                                                                PreparedImage]]] = {
    "slice": (_slice_grid, _slice_prepare),  # LLaVA-UHD: overview + slices (processing/slicing.py)
    "fixed": (lambda image, cfg: None, _fixed_prepare),  # one square resize
}


def grid_of(image: Image.Image, cfg: ProcessorConfig) -> Grid | None:
    """The chunk layout without touching pixels (token counts are known before any heavy work)."""
    return KINDS[cfg.kind][0](image, cfg)


def prepare_image(image: Image.Image, cfg: ProcessorConfig) -> PreparedImage:
    return KINDS[cfg.kind][1](image, cfg)
