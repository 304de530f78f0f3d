"""Square tiles + one global image (SmolVLM / Idefics3), exact to transformers' image processor.

The reference is transformers 5's ``Idefics3ImageProcessorPil`` / ``SmolVLMImageProcessorPil``
(identical algorithms; ``image_processing_pil_idefics3.py``), the backend ``AutoProcessor`` picks
when torchvision is not installed. Its torchvision twin (``image_processing_idefics3.py``, the
default when torchvision >= 0.27 is installed) resizes with torchvision's antialiased Lanczos and
gives different pixels; this module reproduces the Pillow one (NOTES.md in families/idefics3).

Three Pillow LANCZOS resizes, each from the previous result, never from the original:

1. the longest edge to ``longest_edge`` (= 4 tiles; small images are *upscaled*), the other edge
   ``int(edge / aspect)`` rounded up to even, at least 1, then capped at 4096;
2. that image to multiples of ``tile`` (the long side ``ceil``-ed, the short side derived from the
   aspect ratio with ``int`` then ``ceil``-ed);
3. if step 2 is larger than one tile: the tiles are plain crops of it, row-major, and the global
   image is step 2's image resized to ``tile x tile``, placed after the tiles. Otherwise the one
   ``tile x tile`` image is the global image and the grid is 0 x 0 (the prompt then has no rows).

Sizes here are ``(width, height)`` like Pillow; grids are ``(rows, cols)`` like the reference, except
in the ``ImagePlan`` the runtime sees (``(cols, rows)``, None for one tile).

As a processor kind (``runtime/images.py`` ``"square_tiles"``): ``ProcessorConfig.image_size`` is the
tile, ``options`` holds ``longest_edge`` (step 1) and ``split`` (``do_image_splitting``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from edgevlm.errors import ImageError
from edgevlm.processing.config import ProcessorConfig
from edgevlm.processing.images import to_rgb
from edgevlm.processing.normalize import normalize_chw
from edgevlm.processing.plan import ImagePlan

MAX_IMAGE_SIZE = 4096  # the reference's absolute cap on either edge after step 1
LANCZOS = Image.Resampling.LANCZOS


@dataclass(frozen=True)
class TilePlan:
    """Every size of the three steps, computed without touching pixels (token counts, golden tests)."""

    fitted_size: tuple[int, int]  # (w, h) after step 1
    canvas_size: tuple[int, int]  # (w, h) after step 2: multiples of the tile
    tile: int
    rows: int  # 0 when the image is one tile (then there is only the global image)
    cols: int

    @property
    def n_tiles(self) -> int:
        """Vision-tower inputs: rows * cols crops plus the global image."""
        return self.rows * self.cols + 1


def fit_longest_edge(width: int, height: int, longest_edge: int) -> tuple[int, int]:
    """Step 1 sizes: the reference's ``_resize_output_size_rescale_to_max_len`` then ``..._below_upper_bound``."""
    aspect = width / height
    if width >= height:
        width = longest_edge
        height = int(width / aspect)
        height += height % 2  # rounded up to even
    else:
        height = longest_edge
        width = int(height * aspect)
        width += width % 2
    width, height = max(width, 1), max(height, 1)
    aspect = width / height  # the cap below works on the step-1 size (its own aspect ratio)
    if width >= height and width > MAX_IMAGE_SIZE:
        width, height = MAX_IMAGE_SIZE, int(MAX_IMAGE_SIZE / aspect)
    elif height > width and height > MAX_IMAGE_SIZE:
        height, width = MAX_IMAGE_SIZE, int(MAX_IMAGE_SIZE * aspect)
    return max(width, 1), max(height, 1)


def tile_canvas(width: int, height: int, tile: int) -> tuple[int, int]:
    """Step 2 sizes: the reference's ``resize_for_vision_encoder`` (both edges multiples of ``tile``)."""
    aspect = width / height
    if width >= height:
        width = math.ceil(width / tile) * tile
        height = math.ceil(int(width / aspect) / tile) * tile
    else:
        height = math.ceil(height / tile) * tile
        width = math.ceil(int(height * aspect) / tile) * tile
    return width, height


def plan_tiles(image_size: tuple[int, int], tile: int, longest_edge: int, split: bool = True) -> TilePlan:
    """The reference's decisions for an image of ``image_size`` (w, h)."""
    width, height = image_size
    if width <= 0 or height <= 0:
        raise ImageError(f"image has zero size {width}x{height}; give an image with pixels")
    fitted = fit_longest_edge(width, height, longest_edge)
    if not split:  # do_image_splitting=False: one tile x tile image
        return TilePlan(fitted, (tile, tile), tile, 0, 0)
    canvas = tile_canvas(*fitted, tile)
    if canvas[0] > tile or canvas[1] > tile:
        return TilePlan(fitted, canvas, tile, canvas[1] // tile, canvas[0] // tile)
    return TilePlan(fitted, canvas, tile, 0, 0)


@dataclass
class TiledImage:
    """One image as vision-tower inputs: the tiles row-major, then the global image."""

    pixel_values: np.ndarray  # float32 [n_tiles, 3, tile, tile], normalised
    plan: TilePlan

    @property
    def grid(self) -> tuple[int, int]:
        """(rows, cols); (0, 0) when the image is a single (global) tile."""
        return self.plan.rows, self.plan.cols


def tile_pieces(image: Image.Image, plan: TilePlan) -> list[np.ndarray]:
    """uint8 ``[tile, tile, 3]`` pieces in the reference's order (tiles row-major, global last)."""
    fitted = image.resize(plan.fitted_size, resample=LANCZOS)
    canvas = fitted.resize(plan.canvas_size, resample=LANCZOS)
    if plan.rows == 0:
        return [np.asarray(canvas)]
    cells = np.asarray(canvas)  # [H, W, 3]
    t = plan.tile
    pieces = [cells[r * t:(r + 1) * t, c * t:(c + 1) * t] for r in range(plan.rows) for c in range(plan.cols)]
    pieces.append(np.asarray(canvas.resize((t, t), resample=LANCZOS)))  # the global image, from step 2
    return pieces


def preprocess_square_tiles(image: Image.Image, tile: int, longest_edge: int, mean, std,
                            rescale_factor: float = 1 / 255, split: bool = True) -> TiledImage:
    """RGB Pillow image -> normalised tiles (``Idefics3ImageProcessorPil`` with ``do_image_splitting=split``)."""
    image = to_rgb(image)  # no-op for load_image output
    plan = plan_tiles(image.size, tile, longest_edge, split)
    pieces = tile_pieces(image, plan)
    stacked = np.stack(pieces).transpose(3, 0, 1, 2)  # uint8 [3, n, tile, tile]
    pixels = normalize_chw(stacked, rescale_factor, mean, std)  # float32 [3, n, tile, tile]
    return TiledImage(np.ascontiguousarray(pixels.transpose(1, 0, 2, 3)), plan)  # [n, 3, tile, tile]


def image_plan(size: tuple[int, int], cfg: ProcessorConfig, tokens_per_tile: int, n_images: int = 1) -> ImagePlan:
    """The runtime's plan: ``(cols, rows)`` of the tiles (None for one tile), every chunk ``tokens_per_tile`` rows."""
    plan = plan_tiles(size, cfg.image_size, int(cfg.options["longest_edge"]), bool(cfg.options.get("split", True)))
    return ImagePlan.uniform(None if plan.rows == 0 else (plan.cols, plan.rows), tokens_per_tile)


def vision_inputs(image: Image.Image, cfg: ProcessorConfig) -> dict[str, np.ndarray]:
    """``pixel_values`` float32 [n, 3, tile, tile]: the tiles row-major, then the global image."""
    tiled = preprocess_square_tiles(image, cfg.image_size, int(cfg.options["longest_edge"]), cfg.mean, cfg.std,
                                    cfg.rescale_factor, bool(cfg.options.get("split", True)))
    return {"pixel_values": tiled.pixel_values}
