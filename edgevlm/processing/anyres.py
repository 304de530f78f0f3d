"""LLaVA-NeXT "anyres" tiling and LLaVA-OneVision "anyres_max_N", planned without touching pixels.

An image of any size becomes one base tile (the whole image squashed to ``tile_size``) plus a grid
of tiles cut from the image resized into the best of ``pinpoints``; the tile features are put back
into one map, the rows/columns that only saw padding are dropped ("unpadding"), OneVision shrinks
the map when it holds more than ``max_tiles`` tiles' worth of tokens, and a learned newline
embedding ends every row. This module computes every size and count of that, exactly as
transformers does (5.x: ``image_processing_utils.select_best_resolution``,
``get_patch_output_size``, ``LlavaNextProcessor._get_unpadded_features``,
``LlavaOnevisionProcessor._get_unpadded_features``, ``modeling_llava_next.unpad_image``):

* pinpoints are ``(height, width)`` (transformers' order; llama.cpp reads the same list as width,
  height, which only matters for asymmetric lists);
* ``int(round(x, 7))`` and floor division are Python's, on Python floats, as upstream.

Sizes here are explicit ``height`` / ``width`` fields: the published configs mix both orders.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from typing import Any

from edgevlm.errors import ImageError
from edgevlm.processing.config import ProcessorConfig
from edgevlm.processing.plan import ImagePlan

Pinpoint = tuple[int, int]  # (height, width) in pixels


@dataclass(frozen=True)
class AnyresConfig:
    """The tiling settings of an anyres processor, read from ``ProcessorConfig`` (``from_processor``).

    ``ProcessorConfig`` carries them as ``image_size`` (the tile side), ``patch_size`` and
    ``options = {"pinpoints": [[h, w], ...], "max_tiles": 9}`` (max_tiles only for "anyres_max").
    """

    tile_size: int = 336  # side of every vision-tower input (crop_size / size)
    patch_size: int = 14  # vision patch: the feature map of a tile is (tile_size / patch_size)^2
    pinpoints: tuple[Pinpoint, ...] = ((336, 672), (672, 336), (672, 672), (1008, 336), (336, 1008))
    max_tiles: int | None = None  # OneVision "anyres_max_9" -> 9 (pool above it); NeXT: None

    def __post_init__(self) -> None:
        # from JSON come lists; keep hashable tuples
        object.__setattr__(self, "pinpoints", tuple((int(h), int(w)) for h, w in self.pinpoints))
        if not self.pinpoints:
            raise ValueError("anyres pinpoints are empty; give at least one (height, width)")
        for height, width in self.pinpoints:
            if height <= 0 or width <= 0 or height % self.tile_size or width % self.tile_size:
                raise ValueError(f"pinpoint {height}x{width} is not a multiple of the tile size {self.tile_size}")

    @classmethod
    def from_processor(cls, cfg: ProcessorConfig) -> "AnyresConfig":
        if "pinpoints" not in cfg.options:
            raise ValueError(f"processor kind {cfg.kind!r} needs options.pinpoints; re-export the bundle")
        max_tiles = cfg.options.get("max_tiles")
        return cls(tile_size=int(cfg.image_size), patch_size=int(cfg.patch_size), pinpoints=cfg.options["pinpoints"],
                   max_tiles=None if max_tiles is None else int(max_tiles))

    def processor(self, **fields: Any) -> ProcessorConfig:
        """The ``ProcessorConfig`` of these settings ("anyres", or "anyres_max" with a tile budget)."""
        options: dict[str, Any] = {"pinpoints": [list(p) for p in self.pinpoints]}
        if self.max_tiles is not None:
            options["max_tiles"] = self.max_tiles
        return ProcessorConfig(kind="anyres" if self.max_tiles is None else "anyres_max", image_size=self.tile_size,
                               patch_size=self.patch_size, options=options, **fields)

    @property
    def feature_side(self) -> int:
        """Tokens per side of one tile's feature map (24 for CLIP-L/336; 27 for SigLIP/384, whose
        stride-14 patch convolution drops the last 6 pixels)."""
        return self.tile_size // self.patch_size


def select_best_resolution(height: int, width: int, pinpoints: tuple[Pinpoint, ...]) -> Pinpoint:
    """The pinpoint keeping the most of the image's pixels, then wasting the fewest (first on ties)."""
    best, best_effective, best_wasted = None, 0, float("inf")
    for pin_h, pin_w in pinpoints:
        scale = min(pin_w / width, pin_h / height)
        fit_w, fit_h = int(width * scale), int(height * scale)
        effective = min(fit_w * fit_h, width * height)  # upscaling adds no information
        wasted = pin_w * pin_h - effective
        if effective > best_effective or (effective == best_effective and wasted < best_wasted):
            best, best_effective, best_wasted = (pin_h, pin_w), effective, wasted
    return best


def fit_inside(height: int, width: int, target_h: int, target_w: int) -> tuple[int, int]:
    """(h, w) of the image scaled to touch ``target`` on one side, the other side rounded up."""
    scale_w, scale_h = target_w / width, target_h / height
    if scale_w < scale_h:
        return min(math.ceil(height * scale_w), target_h), target_w
    return target_h, min(math.ceil(width * scale_h), target_w)


def unpad_box(height: int, width: int, map_rows: int, map_cols: int) -> tuple[int, int, int, int]:
    """(top, left, rows, cols) of the feature map region that covers the image, not its padding.

    ``map_rows x map_cols`` is the tile grid's feature map; the image was centred in it with its
    aspect ratio kept, so the padding is an equal number of rows (or columns) on both sides.
    """
    if width / height > map_cols / map_rows:  # wider than the map: padded above and below
        image_rows = int(round(height * (map_cols / width), 7))
        pad = (map_rows - image_rows) // 2
        return pad, 0, map_rows - 2 * pad, map_cols
    image_cols = int(round(width * (map_rows / height), 7))
    pad = (map_cols - image_cols) // 2
    return 0, pad, map_rows, map_cols - 2 * pad


def pooled_size(rows: int, cols: int, side: int, max_tiles: int | None) -> tuple[int, int]:
    """OneVision: a map larger than 1.1 x ``max_tiles`` tiles is shrunk (bilinear) by sqrt of the excess."""
    if max_tiles is None:
        return rows, cols
    ratio = math.sqrt(rows * cols / (max_tiles * side**2))
    if ratio > 1.1:
        return int(rows // ratio), int(cols // ratio)
    return rows, cols


@dataclass(frozen=True)
class AnyresPlan:
    """Every size of one image's trip through anyres; ``grid_rows == 0`` means base tile only."""

    image_height: int
    image_width: int
    feature_side: int  # tokens per side of one tile
    best_height: int = 0  # the chosen pinpoint (0 when base only)
    best_width: int = 0
    resized_height: int = 0  # the image inside the pinpoint canvas (aspect kept)
    resized_width: int = 0
    pad_top: int = 0  # zero rows above / columns left of it in the canvas
    pad_left: int = 0
    grid_rows: int = 0  # tiles down / across the canvas
    grid_cols: int = 0
    unpad_top: int = 0  # kept region of the (grid_rows * side) x (grid_cols * side) feature map
    unpad_left: int = 0
    unpad_rows: int = 0
    unpad_cols: int = 0
    out_rows: int = 0  # feature rows / columns after OneVision's pooling (= unpad when none)
    out_cols: int = 0

    @property
    def n_tiles(self) -> int:
        return self.grid_rows * self.grid_cols

    @property
    def n_chunks(self) -> int:
        """Vision-tower inputs: the base tile plus the grid tiles."""
        return 1 + self.n_tiles

    @property
    def pooled(self) -> bool:
        return (self.out_rows, self.out_cols) != (self.unpad_rows, self.unpad_cols)

    @property
    def n_tokens(self) -> int:
        """Feature rows (= image tokens in the prompt): the base tile, then each grid row plus its newline.

        Base only (OneVision with several images in one prompt): the base tile plus one newline.
        """
        base = self.feature_side**2
        if self.grid_rows == 0:
            return base + 1
        return base + self.out_rows * (self.out_cols + 1)


def _check_size(height: int, width: int) -> None:
    if height <= 0 or width <= 0:
        raise ImageError(f"image has zero size {width}x{height}; give an image with pixels")


def plan_anyres(height: int, width: int, cfg: AnyresConfig) -> AnyresPlan:
    """The tiling of an image of ``height x width`` pixels (transformers' single-image path)."""
    _check_size(height, width)
    side = cfg.feature_side
    best_h, best_w = select_best_resolution(height, width, cfg.pinpoints)
    resized_h, resized_w = fit_inside(height, width, best_h, best_w)
    rows, cols = best_h // cfg.tile_size, best_w // cfg.tile_size
    top, left, kept_rows, kept_cols = unpad_box(height, width, rows * side, cols * side)
    out_rows, out_cols = pooled_size(kept_rows, kept_cols, side, cfg.max_tiles)
    return AnyresPlan(
        image_height=height, image_width=width, feature_side=side,
        best_height=best_h, best_width=best_w, resized_height=resized_h, resized_width=resized_w,
        pad_top=(best_h - resized_h) // 2, pad_left=(best_w - resized_w) // 2,
        grid_rows=rows, grid_cols=cols,
        unpad_top=top, unpad_left=left, unpad_rows=kept_rows, unpad_cols=kept_cols,
        out_rows=out_rows, out_cols=out_cols,
    )


def plan_base_only(height: int, width: int, cfg: AnyresConfig) -> AnyresPlan:
    """OneVision's multi-image path: no tiles, the image padded to a square, one newline after it."""
    _check_size(height, width)
    return AnyresPlan(image_height=height, image_width=width, feature_side=cfg.feature_side)


def plan_for_prompt(height: int, width: int, cfg: AnyresConfig, n_images: int) -> AnyresPlan:
    """transformers' rule per prompt: NeXT tiles every image; OneVision (a tile budget) tiles only an
    image that is alone in its prompt (``LlavaOnevisionImageProcessor``: ``batch_num_images > 1``)."""
    if cfg.max_tiles is not None and n_images > 1:
        return plan_base_only(height, width, cfg)
    return plan_anyres(height, width, cfg)


def image_plan(size: tuple[int, int], cfg: ProcessorConfig, n_images: int) -> ImagePlan:
    """The runtime's plan of an image of ``size`` = (width, height): one run of ``n_tokens`` feature rows
    (the base tile's, then the grid rows with their newlines: the packing merges the tiles, so the
    prompt has no per-tile runs), the tiling itself in ``data["anyres"]``."""
    width, height = size
    plan = plan_for_prompt(height, width, AnyresConfig.from_processor(cfg), n_images)
    return ImagePlan(None, plan.n_tokens, (), {"anyres": plan, "chunks": plan.n_chunks})
