"""Aspect-ratio tiles + a thumbnail (InternVL's dynamic tiling), exact to transformers' image processor.

The reference is transformers 5's ``GotOcr2ImageProcessorPil`` with ``crop_to_patches=True``
(``image_processing_pil_got_ocr2.py``; ``InternVLProcessor`` switches it on), the backend
``AutoProcessor`` picks when torchvision is not installed. The torchvision twin resizes with
torchvision's bicubic and differs in pixels; this module reproduces the Pillow one.

* The grid ``(cols, rows)`` is the one, among all with ``min_tiles <= cols * rows <= max_tiles``,
  whose ``cols / rows`` is closest to the image's ``w / h``; the candidates are visited by
  ``cols`` then ``rows``, stably sorted by tile count; on an exact tie the later candidate wins
  when the image area exceeds half the candidate canvas (the reference's rule, kept verbatim in
  behaviour, including its dependence on visiting order).
* The whole image is resized (Pillow BICUBIC, from the original) to ``cols * tile x rows * tile`` and
  cut into tiles row-major; when there is more than one tile, a thumbnail (the original resized to
  ``tile x tile``) follows them. A 1 x 1 grid is that one resized image, without a thumbnail.

As a processor kind (``runtime/images.py`` ``"aspect_tiles"``): ``ProcessorConfig.image_size`` is the
tile, ``options`` holds ``min_tiles``, ``max_tiles`` and ``crop`` (``crop_to_patches``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

from edgevlm.errors import ImageError
from edgevlm.processing.config import ProcessorConfig
from edgevlm.processing.images import to_rgb
from edgevlm.processing.normalize import normalize_chw
from edgevlm.processing.plan import ImagePlan

BICUBIC = Image.Resampling.BICUBIC


@lru_cache(maxsize=16)
def candidate_grids(min_tiles: int, max_tiles: int) -> tuple[tuple[int, int], ...]:
    """``(cols, rows)`` grids in the reference's visiting order."""
    grids = [(cols, rows) for cols in range(1, max_tiles + 1) for rows in range(1, max_tiles + 1)
             if min_tiles <= cols * rows <= max_tiles]
    return tuple(sorted(grids, key=lambda g: g[0] * g[1]))  # sorted() is stable: ties keep cols-major order


def best_grid(width: int, height: int, tile: int, min_tiles: int, max_tiles: int) -> tuple[int, int]:
    """``(cols, rows)`` for an image of ``width x height`` (the reference's ``get_optimal_tiled_canvas``)."""
    aspect = width / height
    area = width * height
    best, best_diff = (1, 1), float("inf")
    for grid in candidate_grids(min_tiles, max_tiles):
        diff = abs(aspect - grid[0] / grid[1])
        if diff < best_diff:
            best, best_diff = grid, diff
        elif diff == best_diff and area > 0.5 * tile * tile * grid[0] * grid[1]:
            best = grid
    return best


@dataclass(frozen=True)
class AspectPlan:
    tile: int
    cols: int
    rows: int

    @property
    def thumbnail(self) -> bool:
        return self.cols * self.rows > 1

    @property
    def n_tiles(self) -> int:
        """Vision-tower inputs: the grid's tiles plus the thumbnail when there is more than one tile."""
        return self.cols * self.rows + (1 if self.thumbnail else 0)


def plan_aspect_tiles(image_size: tuple[int, int], tile: int, min_tiles: int = 1, max_tiles: int = 12,
                      crop: bool = True) -> AspectPlan:
    width, height = image_size
    if width <= 0 or height <= 0:
        raise ImageError(f"image has zero size {width}x{height}; give an image with pixels")
    if not crop or max_tiles <= 1:  # the reference's plain resize path
        return AspectPlan(tile, 1, 1)
    return AspectPlan(tile, *best_grid(width, height, tile, min_tiles, max_tiles))


@dataclass
class AspectTiledImage:
    """One image as vision-tower inputs: the tiles row-major, then the thumbnail (if any)."""

    pixel_values: np.ndarray  # float32 [n_tiles, 3, tile, tile], normalised
    plan: AspectPlan


def aspect_pieces(image: Image.Image, plan: AspectPlan) -> list[np.ndarray]:
    """uint8 ``[tile, tile, 3]`` pieces in the reference's order."""
    t = plan.tile
    canvas = np.asarray(image.resize((plan.cols * t, plan.rows * t), resample=BICUBIC))  # [rows*t, cols*t, 3]
    pieces = [canvas[r * t:(r + 1) * t, c * t:(c + 1) * t] for r in range(plan.rows) for c in range(plan.cols)]
    if plan.thumbnail:
        pieces.append(np.asarray(image.resize((t, t), resample=BICUBIC)))  # from the original image
    return pieces


def preprocess_aspect_tiles(image: Image.Image, tile: int, mean, std, min_tiles: int = 1, max_tiles: int = 12,
                            rescale_factor: float = 1 / 255, crop: bool = True) -> AspectTiledImage:
    """RGB Pillow image -> normalised tiles (``GotOcr2ImageProcessorPil`` with ``crop_to_patches=crop``)."""
    image = to_rgb(image)  # no-op for load_image output
    plan = plan_aspect_tiles(image.size, tile, min_tiles, max_tiles, crop)
    stacked = np.stack(aspect_pieces(image, plan)).transpose(3, 0, 1, 2)  # uint8 [3, n, tile, tile]
    pixels = normalize_chw(stacked, rescale_factor, mean, std)  # float32 [3, n, tile, tile]
    return AspectTiledImage(np.ascontiguousarray(pixels.transpose(1, 0, 2, 3)), plan)  # [n, 3, tile, tile]


def _options(cfg: ProcessorConfig) -> dict:
    o = cfg.options
    return {"min_tiles": int(o.get("min_tiles", 1)), "max_tiles": int(o.get("max_tiles", 12)),
            "crop": bool(o.get("crop", True))}


def image_plan(size: tuple[int, int], cfg: ProcessorConfig, tokens_per_tile: int, n_images: int = 1) -> ImagePlan:
    """The runtime's plan: ``(cols, rows)`` (None for a 1 x 1 grid), every chunk ``tokens_per_tile`` rows."""
    plan = plan_aspect_tiles(size, cfg.image_size, **_options(cfg))
    return ImagePlan.uniform((plan.cols, plan.rows) if plan.thumbnail else None, tokens_per_tile)


def vision_inputs(image: Image.Image, cfg: ProcessorConfig) -> dict[str, np.ndarray]:
    """``pixel_values`` float32 [n, 3, tile, tile]: the tiles row-major, then the thumbnail (if any)."""
    tiled = preprocess_aspect_tiles(image, cfg.image_size, cfg.mean, cfg.std, rescale_factor=cfg.rescale_factor,
                                    **_options(cfg))
    return {"pixel_values": tiled.pixel_values}
