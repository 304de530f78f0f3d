"""Anyres pixels: the base tile and the grid tiles of one image, exact to transformers' Pillow processors.

``LlavaNextImageProcessorPil`` / ``LlavaOnevisionImageProcessorPil`` (transformers 5.x without
torchvision, which is what ``AutoProcessor`` gives then) do, per image:

1. the grid: resize (Pillow, ``resample``) to ``anyres.fit_inside`` of the chosen pinpoint, paste
   centred on a black (zero) canvas of the pinpoint's size (floor of the margin top/left), cut
   ``tile_size`` tiles row-major;
2. the base tile: the whole image resized to ``tile_size x tile_size`` (aspect not kept);
3. every tile then goes through resize-to-``size`` and centre-crop, which are identities for the
   published configs (tiles are already ``tile_size`` square; Pillow returns a copy at equal size);
4. rescale + normalise (``normalize.normalize_chw``, bit-identical).

OneVision with several images in one prompt skips tiling: ``square.py``'s "pad" mode, one tile.
The plan (``anyres.plan_anyres`` / ``plan_base_only``) is made from the size alone, before this runs.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from edgevlm.processing.anyres import AnyresPlan
from edgevlm.processing.config import ProcessorConfig
from edgevlm.processing.images import to_rgb
from edgevlm.processing.normalize import normalize_chw
from edgevlm.processing.square import RESAMPLE, padded_square


def grid_canvas(image: Image.Image, plan: AnyresPlan, resample: str) -> np.ndarray:
    """uint8 ``[best_h, best_w, 3]``: the image resized into the pinpoint, zero padding around it."""
    resized = image.resize((plan.resized_width, plan.resized_height), resample=RESAMPLE[resample])
    canvas = np.zeros((plan.best_height, plan.best_width, 3), dtype=np.uint8)
    top, left = plan.pad_top, plan.pad_left
    canvas[top : top + plan.resized_height, left : left + plan.resized_width] = np.asarray(resized)
    return canvas


def tile_pixels(image: Image.Image, plan: AnyresPlan, tile_size: int, resample: str) -> list[np.ndarray]:
    """uint8 ``[S, S, 3]`` views: the base tile, then the grid tiles row-major."""
    base = np.asarray(image.resize((tile_size, tile_size), resample=RESAMPLE[resample]))
    canvas = grid_canvas(image, plan, resample)
    tiles = [
        canvas[row * tile_size : (row + 1) * tile_size, col * tile_size : (col + 1) * tile_size]
        for row in range(plan.grid_rows)
        for col in range(plan.grid_cols)
    ]
    return [base] + tiles


def preprocess_anyres(image: Image.Image, cfg: ProcessorConfig, plan: AnyresPlan) -> np.ndarray:
    """float32 ``[plan.n_chunks, 3, S, S]``: the vision-tower inputs of one image, base tile first.

    A base-only plan (OneVision with several images in the prompt) is one mean-padded square, as
    transformers makes it (``square.padded_square``); otherwise the base tile and the grid tiles.
    """
    image = to_rgb(image)
    size = cfg.image_size
    if plan.grid_rows == 0:
        tiles = [padded_square(image, size, cfg.mean, cfg.resample)]
    else:
        tiles = tile_pixels(image, plan, size, cfg.resample)
    out = np.empty((len(tiles), 3, size, size), dtype=np.float32)  # [n_chunks, 3, S, S]
    for index, tile in enumerate(tiles):
        out[index] = normalize_chw(tile.transpose(2, 0, 1), cfg.rescale_factor, cfg.mean, cfg.std)
    return out
