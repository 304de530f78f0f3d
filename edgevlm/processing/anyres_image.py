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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from edgevlm.processing.anyres import AnyresConfig, AnyresPlan, plan_anyres, plan_base_only
from edgevlm.processing.images import to_rgb
from edgevlm.processing.normalize import normalize_chw
from edgevlm.processing.square import RESAMPLE, SquareConfig, square_pixels


@dataclass
class AnyresImage:
    """One image as vision-tower inputs: the base tile first, then the grid tiles row-major."""

    pixel_values: np.ndarray  # float32 [n_chunks, 3, S, S]
    plan: AnyresPlan


def grid_canvas(image: Image.Image, plan: AnyresPlan, resample: str) -> np.ndarray:
    """uint8 ``[best_h, best_w, 3]``: the image resized into the pinpoint, zero padding around it."""
    resized = image.resize((plan.resized_width, plan.resized_height), resample=RESAMPLE[resample])
    canvas = np.zeros((plan.best_height, plan.best_width, 3), dtype=np.uint8)
    top, left = plan.pad_top, plan.pad_left
    canvas[top : top + plan.resized_height, left : left + plan.resized_width] = np.asarray(resized)
    return canvas


def tile_pixels(image: Image.Image, plan: AnyresPlan, cfg: AnyresConfig) -> list[np.ndarray]:
    """uint8 ``[S, S, 3]`` views: the base tile, then the grid tiles row-major."""
    size = cfg.tile_size
    base = np.asarray(image.resize((size, size), resample=RESAMPLE[cfg.resample]))
    canvas = grid_canvas(image, plan, cfg.resample)
    tiles = [
        canvas[row * size : (row + 1) * size, col * size : (col + 1) * size]
        for row in range(plan.grid_rows)
        for col in range(plan.grid_cols)
    ]
    return [base] + tiles


def _normalize_tiles(tiles: list[np.ndarray], cfg: AnyresConfig) -> np.ndarray:
    size = cfg.tile_size
    out = np.empty((len(tiles), 3, size, size), dtype=np.float32)  # [n_chunks, 3, S, S]
    for index, tile in enumerate(tiles):
        out[index] = normalize_chw(tile.transpose(2, 0, 1), cfg.rescale_factor, cfg.mean, cfg.std)
    return out


def preprocess_anyres(image: Image.Image, cfg: AnyresConfig, *, alone: bool = True) -> AnyresImage:
    """The vision-tower inputs of one image.

    ``alone``: the image is the only one in its prompt. OneVision (``cfg.max_tiles`` set) tiles only
    then, as transformers does; with several images each is one mean-padded square. NeXT always tiles.
    """
    image = to_rgb(image)
    width, height = image.size
    if not alone and cfg.max_tiles is not None:
        square = SquareConfig(mode="pad", size=cfg.tile_size, mean=cfg.mean, std=cfg.std,
                              rescale_factor=cfg.rescale_factor, resample=cfg.resample)
        return AnyresImage(_normalize_tiles([square_pixels(image, square)], cfg), plan_base_only(height, width, cfg))
    plan = plan_anyres(height, width, cfg)
    return AnyresImage(_normalize_tiles(tile_pixels(image, plan, cfg), cfg), plan)
