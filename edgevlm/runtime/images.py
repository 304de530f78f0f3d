"""From a user's image to what a backend's vision part takes, selected by the manifest's processor kind.

Each processor kind (an algorithm named in the manifest's ``processor.kind``) is an ``ImageKind``:
- ``plan(size, cfg, tokens_per_chunk, n_images)``: the image's chunks and feature rows from its size
  alone (processing/plan.py), so a prompt's token count is known before any pixel work;
  ``n_images`` is the number of images in the prompt (some models tile only a lone image);
- ``prepare(image, cfg, plan)``: the vision part's inputs;
- ``pack(features, plan)``: the feature rows in prompt order, from the vision part's output (most
  kinds just flatten the chunks; some unpad or add row separators). ``tables`` names the bundle's
  data parts (manifest parts of format "npy", e.g. a learned row-separator embedding) that ``pack``
  takes as keyword arguments;
- ``request_options``: settings a request may override (``ProcessorConfig.options`` keys, e.g. the
  native-resolution pixel budget), checked by ``check(cfg)`` before any image is touched.
A new kind is one entry in ``KINDS`` plus its algorithm in edgevlm/processing/.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from PIL import Image

from ..errors import BundleError, ImageError
from ..processing import anyres, aspect_tiles, square_tiles
from ..processing import native_resolution as native
from ..processing.anyres_features import pack_anyres_features
from ..processing.anyres_image import preprocess_anyres
from ..processing.config import ProcessorConfig
from ..processing.plan import ImagePlan
from ..processing.preprocess import preprocess_fixed, preprocess_slices
from ..processing.slice_merge import pack_merged, plan_merged
from ..processing.slicing import plan_slices
from ..processing.square import preprocess_square


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
    pack: Callable[..., np.ndarray] = flatten_chunks  # (features, plan, **tables) -> rows [K, hidden]
    depends_on_count: bool = False  # the plan changes with the number of images in the prompt
    tables: tuple[str, ...] = ()  # data parts of the bundle that ``pack`` takes
    request_options: tuple[str, ...] = ()  # ProcessorConfig.options a request may override
    check: Callable[[ProcessorConfig], None] = lambda cfg: None  # refuse settings that cannot work


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


def _square_prepare(image: Image.Image, cfg: ProcessorConfig, plan: ImagePlan) -> PreparedImage:
    return PreparedImage({"pixel_values": preprocess_square(image, cfg)[None]}, plan)  # [1, 3, S, S]


def _anyres_prepare(image: Image.Image, cfg: ProcessorConfig, plan: ImagePlan) -> PreparedImage:
    return PreparedImage({"pixel_values": preprocess_anyres(image, cfg, plan.data["anyres"])}, plan)  # [n, 3, S, S]


def _anyres_pack(features: np.ndarray, plan: ImagePlan, image_newline: np.ndarray) -> np.ndarray:
    return pack_anyres_features(features, plan.data["anyres"], image_newline)


def _uniform_plan(size: tuple[int, int], cfg: ProcessorConfig, tokens: int, n_images: int) -> ImagePlan:
    return ImagePlan.uniform(None, tokens)


_ANYRES = dict(plan=lambda size, cfg, tokens, n: anyres.image_plan(size, cfg, n), prepare=_anyres_prepare,
               pack=_anyres_pack, tables=("image_newline",))


def _native_plan(size: tuple[int, int], cfg: ProcessorConfig, tokens: int, n_images: int) -> ImagePlan:
    settings = native.NativeResolutionConfig.from_processor(cfg)
    native.refuse_below_one_token(size, settings)
    plan = native.plan_native_resolution(size, settings)
    t, h, w = plan.grid_thw
    m = settings.merge_size
    # one chunk of t*(h/m)*(w/m) rows; M-RoPE positions take the merged grid (processing/mrope.py)
    return ImagePlan.uniform(None, plan.n_tokens, grid_thw=plan.grid_thw, position_grid=(t, h // m, w // m))


def _native_prepare(image: Image.Image, cfg: ProcessorConfig, plan: ImagePlan) -> PreparedImage:
    item = native.preprocess_native_resolution(image, native.NativeResolutionConfig.from_processor(cfg))
    return PreparedImage({"pixel_values": item.pixel_values,  # [n_patches, C*T*p*p]
                          "image_grid_thw": item.grid_thw[None]}, plan)  # [1, 3]


KINDS: dict[str, ImageKind] = {
    "slice": ImageKind(_slice_plan, _slice_prepare),  # overview + slices (processing/slicing.py)
    "fixed": ImageKind(_uniform_plan, _fixed_prepare),  # one resize
    # square tiles + a global image, last (SmolVLM / Idefics3: processing/square_tiles.py)
    "square_tiles": ImageKind(square_tiles.image_plan,
                              lambda image, cfg, plan: PreparedImage(square_tiles.vision_inputs(image, cfg), plan)),
    # aspect-ratio tiles + a thumbnail, last (InternVL: processing/aspect_tiles.py)
    "aspect_tiles": ImageKind(aspect_tiles.image_plan,
                              lambda image, cfg, plan: PreparedImage(aspect_tiles.vision_inputs(image, cfg), plan)),
    "square": ImageKind(_uniform_plan, _square_prepare),  # CLIP centre crop / mean-colour pad (processing/square.py)
    # base tile + best-pinpoint grid, unpadded, newline rows (processing/anyres*.py)
    "anyres": ImageKind(**_ANYRES),
    # anyres with a tile budget (bilinear pooling above it); tiles only an image alone in its prompt
    "anyres_max": ImageKind(**_ANYRES, depends_on_count=True),
    # LLaVA-UHD whose chunks give h*w/m^2 rows each (a patch-merging vision part: processing/slice_merge.py)
    "slice_merge": ImageKind(plan_merged, _slice_prepare, pack_merged),
    # Qwen2-VL style: own size within a pixel budget, 2x2-merged patches (processing/native_resolution.py)
    "native_resolution": ImageKind(_native_plan, _native_prepare, request_options=("min_pixels", "max_pixels"),
                                   check=lambda cfg: native.NativeResolutionConfig.from_processor(cfg).check()),
}


def image_kind(cfg: ProcessorConfig) -> ImageKind:
    if cfg.kind not in KINDS:
        raise BundleError(f"the bundle's processor kind {cfg.kind!r} is not one this edgevlm runs "
                          f"({', '.join(KINDS)}); upgrade edgevlm.")
    return KINDS[cfg.kind]


def request_processor(cfg: ProcessorConfig, overrides: dict[str, Any]) -> ProcessorConfig:
    """The processor settings of one request: ``cfg`` with the kind's request options overridden
    (None keeps the bundle's value). Checked here, before any image is loaded."""
    given = {k: v for k, v in overrides.items() if v is not None}
    kind = image_kind(cfg)
    if not given:
        return cfg
    unknown = sorted(set(given) - set(kind.request_options))
    if unknown:
        takers = [name for name, k in KINDS.items() if set(unknown) <= set(k.request_options)]
        raise ImageError(f"{', '.join(unknown)} applies to {' and '.join(takers) or 'no'} bundles; this bundle's "
                         f"images are processed as {cfg.kind!r}. Leave it out.")
    for key, value in given.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ImageError(f"{key} {value!r} is not a pixel count; give a whole number such as {28 * 28 * 256}")
    cfg = dataclasses.replace(cfg, options={**cfg.options, **{k: int(v) for k, v in given.items()}})
    kind.check(cfg)
    return cfg


def plan_image(image: Image.Image, cfg: ProcessorConfig, tokens_per_chunk: int, n_images: int = 1) -> ImagePlan:
    """The chunk layout without touching pixels (token counts are known before any heavy work)."""
    return image_kind(cfg).plan(image.size, cfg, tokens_per_chunk, n_images)


def prepare_image(image: Image.Image, cfg: ProcessorConfig, plan: ImagePlan | None = None,
                  tokens_per_chunk: int = 0) -> PreparedImage:
    kind = image_kind(cfg)
    return kind.prepare(image, cfg, plan or kind.plan(image.size, cfg, tokens_per_chunk, 1))


def pack_features(features: np.ndarray, cfg: ProcessorConfig, plan: ImagePlan,
                  tables: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """The vision part's output [n_chunks, tokens, hidden] -> feature rows in prompt order [K, hidden];
    ``tables``: the bundle's data parts by name (``VLM.tables``)."""
    kind = image_kind(cfg)
    missing = [name for name in kind.tables if name not in (tables or {})]
    if missing:
        raise BundleError(f"processor kind {cfg.kind!r} needs the data part(s) {', '.join(missing)}, which the bundle "
                          "lacks; re-export it.")
    return kind.pack(features, plan, **{name: tables[name] for name in kind.tables})


def grid_of(image: Image.Image, cfg: ProcessorConfig) -> Any:
    """The slice grid ([cols, rows] or None) of an image (the plan's grid, for callers that need only that)."""
    plan = plan_image(image, cfg, 1)
    return None if plan.grid is None else list(plan.grid)
