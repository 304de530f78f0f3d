"""Native-resolution preprocessing (Qwen2-VL / Qwen2.5-VL): ``smart_resize`` + temporal patchify.

The image keeps (close to) its own aspect ratio and size: both sides are rounded to multiples of
``factor = patch_size * merge_size`` (28 px) with the pixel count kept inside ``[min_pixels,
max_pixels]``. The resized image is cut into ``patch_size`` patches in *merge-block order* (the
``merge_size x merge_size`` patches that the merger later fuses into one token are adjacent), and
every patch is repeated ``temporal_patch_size`` times (a still image is two identical video frames).

Exact to transformers' ``Qwen2VLImageProcessorPil`` (the backend ``AutoProcessor`` resolves to
without torchvision): Pillow resize of the 8-bit image, then rescale + normalise in the same float
arithmetic (``normalize.py``), so the float32 output is bit-identical.

Bad settings and images are refused *before* any resize with one ``ImageError`` line (see
``plan_native_resolution``); for the same inputs transformers returns a size outside the bounds
(min_pixels > max_pixels, max_pixels below one token), fails in its size check (min_pixels 0) or
raises a ValueError (side ratio over 200).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from edgevlm.errors import ImageError
from edgevlm.processing.config import ProcessorConfig, _DictMixin
from edgevlm.processing.images import to_rgb
from edgevlm.processing.normalize import normalize_chw

# transformers' smart_resize refuses longer/shorter side ratios above this (ValueError).
MAX_ASPECT_RATIO = 200

# ProcessorConfig.options of the native_resolution kind (the rest maps onto ProcessorConfig's own fields)
PROCESSOR_OPTIONS = ("min_pixels", "max_pixels", "temporal_patch_size", "merge_size")

_RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


@dataclass(frozen=True)
class NativeResolutionConfig(_DictMixin):
    """The image processor's settings (preprocessor_config.json of a Qwen2-VL checkpoint).

    Defaults are transformers' class defaults; published checkpoints set ``max_pixels`` 12845056.
    """

    min_pixels: int = 56 * 56
    max_pixels: int = 28 * 28 * 1280
    patch_size: int = 14
    temporal_patch_size: int = 2
    merge_size: int = 2
    mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP
    std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
    rescale_factor: float = 1 / 255
    resample: str = "bicubic"

    @property
    def factor(self) -> int:
        """Side multiple of the resized image: one merged token covers factor x factor pixels."""
        return self.patch_size * self.merge_size

    @property
    def patch_dim(self) -> int:
        """Length of one ``pixel_values`` row: C * T * p * p."""
        return 3 * self.temporal_patch_size * self.patch_size * self.patch_size

    def with_pixels(self, min_pixels: int | None = None, max_pixels: int | None = None) -> "NativeResolutionConfig":
        """A copy with per-request pixel bounds (the token-budget dial); None keeps the current one."""
        return dataclasses.replace(self, min_pixels=self.min_pixels if min_pixels is None else int(min_pixels),
                                   max_pixels=self.max_pixels if max_pixels is None else int(max_pixels))

    def check(self) -> None:
        """Refuse bounds that cannot be met (transformers silently returns a size outside them)."""
        if self.min_pixels < 1:
            raise ImageError(f"min_pixels {self.min_pixels} must be at least 1 (at 0 a thin image rounds to a "
                             "0-pixel side); the published value is 3136")
        if self.max_pixels < self.factor * self.factor:
            raise ImageError(f"max_pixels {self.max_pixels} is below one {self.factor}x{self.factor} image token "
                             f"({self.factor * self.factor} pixels); raise max_pixels")
        if self.min_pixels > self.max_pixels:
            raise ImageError(f"min_pixels {self.min_pixels} is larger than max_pixels {self.max_pixels}; "
                             "lower min_pixels or raise max_pixels")
        if self.resample not in _RESAMPLE:
            raise ImageError(f"resample {self.resample!r} is not one of {sorted(_RESAMPLE)}")

    def processor_config(self) -> ProcessorConfig:
        """The manifest's processor section (kind ``native_resolution``; kind-only settings in ``options``)."""
        return ProcessorConfig(kind="native_resolution", image_size=self.factor, patch_size=self.patch_size,
                               mean=tuple(self.mean), std=tuple(self.std), resample=self.resample,
                               rescale_factor=self.rescale_factor,
                               options={k: getattr(self, k) for k in PROCESSOR_OPTIONS})

    @classmethod
    def from_processor(cls, cfg: ProcessorConfig) -> "NativeResolutionConfig":
        """Inverse of ``processor_config`` (the runtime's view of a manifest's processor section)."""
        return cls(patch_size=cfg.patch_size, mean=tuple(cfg.mean), std=tuple(cfg.std), resample=cfg.resample,
                   rescale_factor=cfg.rescale_factor,
                   **{k: int(cfg.options[k]) for k in PROCESSOR_OPTIONS if k in cfg.options})

    @classmethod
    def from_preprocessor_config(cls, data: dict) -> "NativeResolutionConfig":
        """From preprocessor_config.json (4.x keys min_pixels/max_pixels or 5.x ``size``)."""
        size = data.get("size") or {}
        return cls(min_pixels=int(data.get("min_pixels", size.get("shortest_edge", cls.min_pixels))),
                   max_pixels=int(data.get("max_pixels", size.get("longest_edge", cls.max_pixels))),
                   patch_size=int(data.get("patch_size", 14)),
                   temporal_patch_size=int(data.get("temporal_patch_size", 2)),
                   merge_size=int(data.get("merge_size", 2)),
                   mean=tuple(data.get("image_mean", cls.mean)), std=tuple(data.get("image_std", cls.std)),
                   rescale_factor=float(data.get("rescale_factor", 1 / 255)),
                   resample={2: "bilinear", 3: "bicubic"}.get(int(data.get("resample", 3)), "bicubic"))


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """transformers' ``smart_resize`` (same float arithmetic, same rounding): (height, width) multiples
    of ``factor`` closest to the input with the area inside [min_pixels, max_pixels] when possible."""
    h_bar = round(height / factor) * factor  # Python round: half to even, as the reference
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


@dataclass(frozen=True)
class NativeResolutionPlan:
    """What one image becomes, known from its size alone (no pixels touched)."""

    image_size: tuple[int, int]  # (w, h) of the input
    resized_size: tuple[int, int]  # (w, h) after smart_resize
    grid_thw: tuple[int, int, int]  # (t, h, w) in patches: (1, H/p, W/p)
    merge_size: int

    @property
    def n_patches(self) -> int:
        t, h, w = self.grid_thw
        return t * h * w

    @property
    def n_tokens(self) -> int:
        """``<|image_pad|>`` placeholders (= feature rows) for this image."""
        return self.n_patches // (self.merge_size * self.merge_size)


def plan_native_resolution(image_size: tuple[int, int], cfg: NativeResolutionConfig) -> NativeResolutionPlan:
    """The resize target and patch grid of an image of ``image_size`` (w, h); ``ImageError`` if none.

    Refused (one line each, before any pixel work): bounds that cannot be met (``cfg.check``) and a
    side ratio over 200 (transformers raises ValueError). With ``1 <= min_pixels <= max_pixels`` and
    ``max_pixels >= factor**2`` every image gets at least one factor x factor token, so images
    smaller than one token are *not* refused: like transformers, ``min_pixels`` enlarges them (a 1x1
    image becomes 56x56 at the published min_pixels 3136; the model was trained that way).
    """
    cfg.check()
    width, height = int(image_size[0]), int(image_size[1])
    if width <= 0 or height <= 0:
        raise ImageError(f"image has zero size {width}x{height}; give an image with pixels")
    if max(width, height) / min(width, height) > MAX_ASPECT_RATIO:
        raise ImageError(f"image {width}x{height} has a side ratio over {MAX_ASPECT_RATIO}:1, which this model "
                         "cannot take; crop or pad it to a less extreme shape")
    new_h, new_w = smart_resize(height, width, cfg.factor, cfg.min_pixels, cfg.max_pixels)  # both >= factor
    p = cfg.patch_size
    return NativeResolutionPlan((width, height), (new_w, new_h), (1, new_h // p, new_w // p), cfg.merge_size)


def refuse_below_one_token(image_size: tuple[int, int], cfg: NativeResolutionConfig) -> None:
    """``ImageError`` for an image narrower or shorter than one ``factor`` x ``factor`` token (28 px).

    transformers enlarges such an image to ``min_pixels`` (a 5x3 icon becomes 56x56 of blur); the
    runtime refuses it instead (issue 19: a clear error, not a silent guess). ``plan_native_resolution``
    itself stays exact to transformers for every size."""
    width, height = int(image_size[0]), int(image_size[1])
    if min(width, height) < cfg.factor:
        raise ImageError(f"image is {width}x{height} pixels, smaller than one {cfg.factor}x{cfg.factor} image token "
                         f"on a side; give an image at least {cfg.factor} px wide and high (upscale it yourself if "
                         "you must)")


@dataclass
class NativeResolutionImage:
    """One image as vision-tower input rows."""

    pixel_values: np.ndarray  # float32 [n_patches, C*T*p*p], patches in merge-block order
    plan: NativeResolutionPlan

    @property
    def grid_thw(self) -> np.ndarray:  # int64 [3]
        return np.asarray(self.plan.grid_thw, dtype=np.int64)


def patchify(pixels_hwc: np.ndarray, cfg: NativeResolutionConfig) -> np.ndarray:
    """uint8 ``[H, W, 3]`` (H, W multiples of factor) -> normalised float32 ``[n_patches, C*T*p*p]``.

    Row order: merge blocks in raster order, then the m x m patches of a block in raster order.
    Row layout: (channel, frame, y, x), the Conv3d weight order, with the frame axis a copy.
    """
    height, width, channels = pixels_hwc.shape
    p, m, t = cfg.patch_size, cfg.merge_size, cfg.temporal_patch_size
    bh, bw = height // (p * m), width // (p * m)  # merge blocks per column / row
    blocks = pixels_hwc.reshape(bh, m, p, bw, m, p, channels)  # [bh, my, y, bw, mx, x, C]
    view = blocks.transpose(6, 0, 3, 1, 4, 2, 5)  # [C, bh, bw, my, mx, y, x], no copy
    normalised = normalize_chw(view, cfg.rescale_factor, cfg.mean, cfg.std)  # float32, same shape, contiguous
    rows = normalised.transpose(1, 2, 3, 4, 0, 5, 6)[:, :, :, :, :, None]  # [bh, bw, my, mx, C, 1, y, x]
    out = np.empty((bh, bw, m, m, channels, t, p, p), dtype=np.float32)
    out[...] = rows  # the temporal copies
    return out.reshape(bh * bw * m * m, channels * t * p * p)


def preprocess_native_resolution(image: Image.Image, cfg: NativeResolutionConfig) -> NativeResolutionImage:
    """Resize (Pillow, ``cfg.resample``) + rescale + normalise + patchify one RGB image."""
    image = to_rgb(image)  # no-op for load_image output
    plan = plan_native_resolution(image.size, cfg)
    resized = image.resize(plan.resized_size, resample=_RESAMPLE[cfg.resample])  # same size: a copy, as the reference
    return NativeResolutionImage(patchify(np.asarray(resized), cfg), plan)


def concat_images(images: list[NativeResolutionImage]) -> tuple[np.ndarray, np.ndarray]:
    """The processor's batch: ``pixel_values`` float32 [sum n_patches, C*T*p*p], ``image_grid_thw`` int64 [n, 3]."""
    if not images:
        raise ValueError("concat_images needs at least one image")
    pixel_values = np.concatenate([item.pixel_values for item in images], axis=0)
    return pixel_values, np.stack([item.grid_thw for item in images]).astype(np.int64)
