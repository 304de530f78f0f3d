"""LLaVA-UHD adaptive slicing, as the MiniCPM-V reference image processors do it.

The behaviour (grid choice, sizes, crop order, pixels) is that of the HF remote-code
``MiniCPMVImageProcessor.slice_image`` used by MiniCPM-V 2.5, 2.6, o-2.6, 4.0 and 4.5; the golden
tests in ``tests/test_processing_slicing.py`` hold this to the reference for hundreds of sizes.
Arithmetic details that matter for exactness:

* ``round`` is Python's banker's rounding (``round(2.5) == 2``) and ``int`` truncates;
* every resize is Pillow BICUBIC from the *original* image (never overview-from-refine);
* slices are plain crops of the refined image, row-major.

Sizes are ``(width, height)`` like Pillow; grids are ``[cols, rows]`` like the reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image

from edgevlm.errors import ImageError

Size = tuple[int, int]  # (width, height)
Grid = list[int]  # [cols, rows]


def ensure_divide(length: float, divisor: int) -> int:
    """Nearest multiple of ``divisor`` (banker's rounding), at least ``divisor``."""
    return max(round(length / divisor) * divisor, divisor)


def find_best_resize(
    original_size: tuple[float, float],
    scale_resolution: int,
    patch_size: int,
    allow_upscale: bool = False,
) -> Size:
    """Size of about ``scale_resolution**2`` pixels with the input's aspect ratio, multiple of the patch.

    Images at most ``scale_resolution**2`` pixels keep their size (rounded to the patch) unless
    ``allow_upscale``.
    """
    width, height = original_size
    if width * height > scale_resolution * scale_resolution or allow_upscale:
        ratio = width / height
        height = int(scale_resolution / math.sqrt(ratio))  # truncation, as the reference
        width = int(height * ratio)
    return ensure_divide(width, patch_size), ensure_divide(height, patch_size)


def get_refine_size(
    original_size: Size,
    grid: Grid,
    scale_resolution: int,
    patch_size: int,
    allow_upscale: bool = False,
) -> Size:
    """Size of the image the slices are cut from: ``grid`` cells of one best-resize cell size each."""
    width, height = original_size
    grid_x, grid_y = grid
    # The divisor here is the grid, not the patch: the reference first makes the size divisible
    # by the grid, then sizes one (float) cell.
    cell_width = ensure_divide(width, grid_x) / grid_x
    cell_height = ensure_divide(height, grid_y) / grid_y
    best_cell = find_best_resize((cell_width, cell_height), scale_resolution, patch_size, allow_upscale)
    return best_cell[0] * grid_x, best_cell[1] * grid_y


def get_sliced_grid(
    image_size: Size,
    max_slice_nums: int,
    never_split: bool = False,
    scale_resolution: int = 448,
) -> Grid | None:
    """``[cols, rows]`` of the slice grid, or None when the image is not sliced.

    The count of slices is ``ceil(area / scale_resolution**2)`` capped at ``max_slice_nums``; the
    grid among counts n-1, n, n+1 whose aspect ratio is closest in log space wins, the first one
    on ties (strict ``<``), in the reference's enumeration order.
    """
    width, height = image_size
    log_ratio = math.log(width / height)
    multiple = min(math.ceil(width * height / (scale_resolution * scale_resolution)), max_slice_nums)
    if multiple <= 1 or never_split:
        return None
    counts = [n for n in (multiple - 1, multiple, multiple + 1) if n != 1 and n <= max_slice_nums]
    candidates = [[m, n // m] for n in counts for m in range(1, n + 1) if n % m == 0]
    best_grid, min_error = [1, 1], float("inf")
    for grid in candidates:
        error = abs(log_ratio - math.log(grid[0] / grid[1]))
        if error < min_error:
            best_grid, min_error = grid, error
    return best_grid


@dataclass(frozen=True)
class SlicePlan:
    """Sizes of every piece, computed without touching pixels (token counts, golden tests)."""

    overview_size: Size  # (w, h) of the overview (source) image
    grid: Grid | None  # [cols, rows], None when not sliced
    refine_size: Size | None  # (w, h) of the image the slices are cut from
    slice_size: Size | None  # (w, h) of each slice

    @property
    def n_slices(self) -> int:
        return 0 if self.grid is None else self.grid[0] * self.grid[1]

    @property
    def n_chunks(self) -> int:
        """Overview plus slices: the number of vision-tower inputs for this image."""
        return 1 + self.n_slices


def plan_slices(
    image_size: Size,
    max_slice_nums: int = 9,
    scale_resolution: int = 448,
    patch_size: int = 14,
    never_split: bool = False,
) -> SlicePlan:
    """The reference ``slice_image`` decisions for an image of ``image_size`` (w, h)."""
    width, height = image_size
    if width <= 0 or height <= 0:
        raise ImageError(f"image has zero size {width}x{height}; give an image with pixels")
    grid = get_sliced_grid(image_size, max_slice_nums, never_split, scale_resolution)
    if grid is None:
        overview = find_best_resize(image_size, scale_resolution, patch_size, allow_upscale=True)
        return SlicePlan(overview, None, None, None)
    # The overview only ever shrinks here; the refined image may grow.
    overview = find_best_resize(image_size, scale_resolution, patch_size, allow_upscale=False)
    refine = get_refine_size(image_size, grid, scale_resolution, patch_size, allow_upscale=True)
    return SlicePlan(overview, grid, refine, (refine[0] // grid[0], refine[1] // grid[1]))


def resize_for_plan(image: Image.Image, plan: SlicePlan) -> tuple[Image.Image, Image.Image | None]:
    """The overview and the refined image (None when not sliced), both Pillow bicubic from ``image``."""
    overview = image.resize(plan.overview_size, resample=Image.Resampling.BICUBIC)
    if plan.grid is None:
        return overview, None
    return overview, image.resize(plan.refine_size, resample=Image.Resampling.BICUBIC)


def slice_image(
    image: Image.Image,
    max_slice_nums: int = 9,
    scale_resolution: int = 448,
    patch_size: int = 14,
    never_split: bool = False,
) -> tuple[Image.Image, list[list[Image.Image]], Grid | None]:
    """``(source_image, slices, grid)`` with the reference's meaning.

    ``source_image`` is the overview; ``slices`` is a list of rows, each a list of Pillow crops
    left to right (empty when not sliced); ``grid`` is ``[cols, rows]`` or None.
    """
    plan = plan_slices(image.size, max_slice_nums, scale_resolution, patch_size, never_split)
    overview, refine = resize_for_plan(image, plan)
    return overview, crop_slices(refine, plan), plan.grid


def crop_slices(refine: Image.Image | None, plan: SlicePlan) -> list[list[Image.Image]]:
    """The slices of the refined image as rows of Pillow crops, left to right, top to bottom."""
    if refine is None:
        return []
    cell_w, cell_h = plan.slice_size
    cols, rows = plan.grid
    return [
        [refine.crop((x * cell_w, y * cell_h, (x + 1) * cell_w, (y + 1) * cell_h)) for x in range(cols)]
        for y in range(rows)
    ]


# Enumerated patch counts as fractions of the square chunk (scale_resolution / patch)^2, for runtimes
# that compile fixed shapes (Core ML on the Neural Engine). LLaVA-UHD resizes every chunk to about that
# area: over a scan of 33,000 image sizes up to 4200 px, chunk patch counts ranged 778..1191 for
# 448 / 14 (median 1020, 99.9% <= 1116), so 768, 1024, 1088, 1152, 1280 waste at most ~10% on padding
# for almost every chunk and cover them all.
CHUNK_BUCKETS = (0.75, 1.0, 1.0625, 1.125, 1.25)


def chunk_patch_buckets(scale_resolution: int, patch_size: int, fractions: tuple[float, ...] = CHUNK_BUCKETS) -> list[int]:
    """Enumerated patch counts a chunk is padded to (multiples of 16, ascending)."""
    square = (scale_resolution // patch_size) ** 2
    return sorted({int(math.ceil(square * f / 16) * 16) for f in fractions})
