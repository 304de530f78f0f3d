"""From a user's image to what a backend's vision part takes, selected by the manifest's processor kind.

Each processor kind (an algorithm named in the manifest's ``processor.kind``) is an ``ImageKind``:
- ``plan(size, cfg, tokens_per_chunk, n_images)``: the image's chunks and feature rows from its size
  alone (processing/plan.py), so a prompt's token count is known before any pixel work;
  ``n_images`` is the number of images in the prompt (some models tile only a lone image);
- ``prepare(image, cfg, plan)``: the vision part's inputs;
- ``pack(features, plan)``: the feature rows in prompt order, from the vision part's output (most
  kinds just flatten the chunks; some unpad or add row separators).
A new kind is one entry in ``KINDS`` plus its algorithm in edgevlm/processing/.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from PIL import Image

from ..errors import BundleError
from ..processing.config import ProcessorConfig
from ..processing.plan import ImagePlan
from ..processing.preprocess import preprocess_fixed, preprocess_slices
from ..processing.slice_merge import pack_merged, plan_merged
from ..processing.slicing import plan_slices


@dataclass
class PreparedImage:
    inputs: dict[str, np.ndarray]  # what Backend.encode_images takes
    plan: ImagePlan

    @property
    def grid(self):
        return None if self.plan.grid is None else list(self.plan.grid)

    @property
    def n_chunks(self) -> int:
        return self.plan.n_chunks


def flatten_chunks(features: np.ndarray, plan: ImagePlan) -> np.ndarray:
    """[n_chunks, tokens, hidden] -> [n_chunks * tokens, hidden]: chunks already in prompt order."""
    return features.reshape(-1, features.shape[-1])


@dataclass(frozen=True)
class ImageKind:
    plan: Callable[[tuple[int, int], ProcessorConfig, int, int], ImagePlan]
    prepare: Callable[[Image.Image, ProcessorConfig, ImagePlan], PreparedImage]
    pack: Callable[[np.ndarray, ImagePlan], np.ndarray] = flatten_chunks
    depends_on_count: bool = False  # the plan changes with the number of images in the prompt


def _slice_plan(size: tuple[int, int], cfg: ProcessorConfig, tokens: int, n_images: int) -> ImagePlan:
    grid = plan_slices(size, cfg.max_slice_nums, cfg.scale_resolution, cfg.resize_align or cfg.patch_size,
                       cfg.never_split).grid
    return ImagePlan.uniform(grid, tokens)


def _slice_prepare(image: Image.Image, cfg: ProcessorConfig, plan: ImagePlan) -> PreparedImage:
    sliced = preprocess_slices(image, cfg)
    pixel_values, patch_mask = sliced.batched()  # [n, 3, p, L_max], [n, L_max/p]
    inputs = {"pixel_values": pixel_values, "patch_attention_mask": patch_mask, "tgt_sizes": sliced.tgt_sizes}
    return PreparedImage(inputs, plan)


def _fixed_prepare(image: Image.Image, cfg: ProcessorConfig, plan: ImagePlan) -> PreparedImage:
    pixels = preprocess_fixed(image, cfg)  # [3, S, S]
    return PreparedImage({"pixel_values": pixels[None]}, plan)


KINDS: dict[str, ImageKind] = {
    "slice": ImageKind(_slice_plan, _slice_prepare),  # LLaVA-UHD: overview + slices (processing/slicing.py)
    "fixed": ImageKind(lambda size, cfg, tokens, n: ImagePlan.uniform(None, tokens), _fixed_prepare),  # one resize
    # LLaVA-UHD whose chunks give h*w/m^2 rows each (a patch-merging vision part: processing/slice_merge.py)
    "slice_merge": ImageKind(plan_merged, _slice_prepare, pack_merged),
}


def image_kind(cfg: ProcessorConfig) -> ImageKind:
    if cfg.kind not in KINDS:
        raise BundleError(f"the bundle's processor kind {cfg.kind!r} is not one this edgevlm runs "
                          f"({', '.join(KINDS)}); upgrade edgevlm.")
    return KINDS[cfg.kind]


def plan_image(image: Image.Image, cfg: ProcessorConfig, tokens_per_chunk: int, n_images: int = 1) -> ImagePlan:
    """The chunk layout without touching pixels (token counts are known before any heavy work)."""
    return image_kind(cfg).plan(image.size, cfg, tokens_per_chunk, n_images)


def prepare_image(image: Image.Image, cfg: ProcessorConfig, plan: ImagePlan | None = None,
                  tokens_per_chunk: int = 0) -> PreparedImage:
    kind = image_kind(cfg)
    return kind.prepare(image, cfg, plan or kind.plan(image.size, cfg, tokens_per_chunk, 1))


def pack_features(features: np.ndarray, cfg: ProcessorConfig, plan: ImagePlan) -> np.ndarray:
    """The vision part's output [n_chunks, tokens, hidden] -> feature rows in prompt order [K, hidden]."""
    return image_kind(cfg).pack(features, plan)


def grid_of(image: Image.Image, cfg: ProcessorConfig) -> Any:
    """The slice grid ([cols, rows] or None) of an image (the plan's grid, for callers that need only that)."""
    plan = plan_image(image, cfg, 1)
    return None if plan.grid is None else list(plan.grid)
