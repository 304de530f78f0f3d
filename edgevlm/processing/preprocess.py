"""Pixels in, vision-tower inputs out: ``preprocess_slices`` (MiniCPM-V) and ``preprocess_fixed`` (SigLIP).

Both take an RGB Pillow image (see ``images.load_image``) and a ``ProcessorConfig``; their float
output equals the reference processors' bit for bit (see the golden tests).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from PIL import Image

from edgevlm.processing.config import ProcessorConfig
from edgevlm.processing.images import to_rgb
from edgevlm.processing.normalize import normalize_chw
from edgevlm.processing.patchify import batch_chunks, hwc_to_patch_layout
from edgevlm.processing.slicing import Grid, SlicePlan, plan_slices

_RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "lanczos": Image.Resampling.LANCZOS,
    "nearest": Image.Resampling.NEAREST,
}

# One worker: Pillow releases the GIL while resizing, so the overview resize runs beside the
# (larger) refine resize; both read the same source image and are independent.
_RESIZE_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgevlm-resize")


@dataclass
class SlicedImage:
    """One image as MiniCPM-V vision-tower chunks: the overview first, then slices row-major."""

    chunks: list[np.ndarray]  # n_chunks arrays float32 [3, p, L_i], L_i = h_i * w_i * p (patches of chunk i)
    tgt_sizes: np.ndarray  # int32 [n_chunks, 2]: (h_patches, w_patches) per chunk
    grid: Grid | None  # [cols, rows] of the slices, None when not sliced
    image_size: tuple[int, int]  # (w, h) of the input image
    patch_size: int

    @property
    def n_chunks(self) -> int:
        return len(self.chunks)

    @cached_property
    def _batch(self) -> tuple[np.ndarray, np.ndarray]:
        return batch_chunks(self.chunks, self.patch_size)

    def batched(self) -> tuple[np.ndarray, np.ndarray]:
        """``pixel_values`` float32 ``[n_chunks, 3, p, L_max]`` (zero padded) and
        ``patch_attention_mask`` bool ``[n_chunks, L_max // p]``. Computed once, then shared."""
        return self._batch

    def same_size_groups(self) -> list[tuple[list[int], np.ndarray]]:
        """Chunks grouped by ``tgt_size``, for encoders that take equal-size batches without a mask.

        Returns ``(chunk indices, float32 [k, 3, p, L])`` per distinct size, in first-seen order;
        a slice grid gives at most two groups (the overview and the slices).
        """
        groups: dict[tuple[int, int], list[int]] = {}
        for index, size in enumerate(map(tuple, self.tgt_sizes.tolist())):
            groups.setdefault(size, []).append(index)
        return [(indices, np.stack([self.chunks[i] for i in indices])) for indices in groups.values()]

    @property
    def pixel_values(self) -> np.ndarray:  # float32 [n_chunks, 3, p, L_max]
        return self.batched()[0]

    @property
    def patch_attention_mask(self) -> np.ndarray:  # bool [n_chunks, L_max // p]
        return self.batched()[1]


def _pack_chunk(pixels_hwc: np.ndarray, cfg: ProcessorConfig) -> np.ndarray:
    """uint8 ``[h, w, 3]`` -> float32 ``[3, p, (h/p)*(w/p)*p]`` normalised, in one pass."""
    p = cfg.patch_size
    view = hwc_to_patch_layout(pixels_hwc, p)  # uint8 [3, p, rows, cols, p], no copy
    packed = normalize_chw(view, cfg.rescale_factor, cfg.mean, cfg.std)  # float32, contiguous
    return packed.reshape(3, p, -1)


def preprocess_slices(image: Image.Image, cfg: ProcessorConfig) -> SlicedImage:
    """LLaVA-UHD slicing + normalisation + ``reshape_by_patch`` (reference ``MiniCPMVImageProcessor``)."""
    image = to_rgb(image)  # no-op for load_image output
    image.load()  # decode now: two threads must not trigger a lazy load of the same image at once
    align = cfg.resize_align or cfg.patch_size  # the reference aligns sizes to its patch_size argument
    plan = plan_slices(image.size, cfg.max_slice_nums, cfg.scale_resolution, align, cfg.never_split)
    bicubic = Image.Resampling.BICUBIC  # the reference resizes with bicubic whatever cfg.resample says
    if plan.grid is None:
        overview, refine = image.resize(plan.overview_size, resample=bicubic), None
    else:
        pending = _RESIZE_POOL.submit(image.resize, plan.overview_size, bicubic)
        refine = image.resize(plan.refine_size, resample=bicubic)
        overview = pending.result()
    return pack_slices(overview, refine, plan, cfg, image.size)


def pack_slices(
    overview: Image.Image, refine: Image.Image | None, plan: SlicePlan, cfg: ProcessorConfig, image_size: tuple[int, int]
) -> SlicedImage:
    """Chunks from the already resized overview and refined image (see ``slicing.resize_for_plan``)."""
    pieces = [np.asarray(overview)]  # each uint8 [h, w, 3]
    if refine is not None:
        cells = np.asarray(refine)  # uint8 [H, W, 3]
        cell_w, cell_h = plan.slice_size
        cols, rows = plan.grid
        pieces += [
            cells[y * cell_h : (y + 1) * cell_h, x * cell_w : (x + 1) * cell_w]  # views, row-major
            for y in range(rows)
            for x in range(cols)
        ]
    p = cfg.patch_size
    chunks = [_pack_chunk(piece, cfg) for piece in pieces]
    tgt_sizes = np.array([(piece.shape[0] // p, piece.shape[1] // p) for piece in pieces], dtype=np.int32)
    return SlicedImage(chunks, tgt_sizes.reshape(-1, 2), plan.grid, image_size, p)


def preprocess_fixed(image: Image.Image, cfg: ProcessorConfig) -> np.ndarray:
    """Square resize + rescale + normalise (transformers' SigLIP / Gemma 3 processors) -> float32 ``[3, S, S]``."""
    image = to_rgb(image)  # no-op for load_image output
    size = (cfg.image_size, cfg.image_size)
    resized = image.resize(size, resample=_RESAMPLE[cfg.resample])  # same size: Pillow returns a copy
    pixels = np.asarray(resized)  # uint8 [S, S, 3]
    return normalize_chw(pixels.transpose(2, 0, 1), cfg.rescale_factor, cfg.mean, cfg.std)  # float32 [3, S, S]
