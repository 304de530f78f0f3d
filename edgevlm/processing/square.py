"""Square vision inputs from images of any aspect ratio: CLIP's crop and LLaVA's pad.

Two ways transformers' Pillow image processors make an ``S x S`` input (5.x, without torchvision;
exact to them bit for bit, see tests/test_llava_processing.py):

* ``"crop"``: ``CLIPImageProcessorPil`` (the published llava-1.5-*-hf checkpoints): resize so the
  shorter side is ``size`` (the longer side ``int(size * long / short)``), then centre-crop
  ``crop_size`` (offsets ``(h - crop) // 2``, ``(w - crop) // 2``);
* ``"pad"``: ``LlavaImageProcessorPil(do_pad=True)`` (the original LLaVA-1.5 "pad" aspect mode) and
  ``LlavaOnevisionImageProcessorPil`` for an image that shares its prompt with other images: paste
  the image centred on a square of the mean colour (``int(mean * 255)`` per channel), then resize
  that square to ``size``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from edgevlm.processing.config import _DictMixin
from edgevlm.processing.images import to_rgb
from edgevlm.processing.normalize import normalize_chw

RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "lanczos": Image.Resampling.LANCZOS,
    "nearest": Image.Resampling.NEAREST,
}


@dataclass(frozen=True)
class SquareConfig(_DictMixin):
    mode: str = "crop"  # "crop" | "pad"
    size: int = 336  # "crop": the shorter side after resizing; "pad": the output side
    crop_size: int = 336  # "crop" only
    mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
    rescale_factor: float = 1 / 255
    resample: str = "bicubic"

    def __post_init__(self) -> None:
        if self.mode not in ("crop", "pad"):
            raise ValueError(f"SquareConfig.mode must be 'crop' or 'pad', not {self.mode!r}")
        if self.mode == "crop" and self.crop_size > self.size:
            raise ValueError(f"crop_size {self.crop_size} is larger than the resized shorter side {self.size}")

    @property
    def output_size(self) -> int:
        return self.crop_size if self.mode == "crop" else self.size


def shortest_edge_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(w, h) with the shorter side ``size`` and the longer one scaled and truncated, as transformers."""
    if width <= height:
        return size, int(size * height / width)
    return int(size * width / height), size


def pad_color(mean) -> tuple[int, int, int]:
    """The mean colour as bytes, truncated (CLIP's mean gives (122, 116, 104))."""
    return tuple(int(m * 255) for m in mean)


def pad_to_square(image: Image.Image, color: tuple[int, int, int]) -> Image.Image:
    """``image`` centred on a square of ``color`` whose side is the longer side (top/left gets the floor)."""
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    canvas = Image.new("RGB", (side, side), color)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


def square_pixels(image: Image.Image, cfg: SquareConfig) -> np.ndarray:
    """uint8 ``[S, S, 3]``: the square the vision tower sees, before normalisation."""
    image = to_rgb(image)
    resample = RESAMPLE[cfg.resample]
    if cfg.mode == "pad":
        square = pad_to_square(image, pad_color(cfg.mean))
        return np.asarray(square.resize((cfg.size, cfg.size), resample=resample))
    resized = np.asarray(image.resize(shortest_edge_size(*image.size, cfg.size), resample=resample))  # [h, w, 3]
    top = (resized.shape[0] - cfg.crop_size) // 2
    left = (resized.shape[1] - cfg.crop_size) // 2
    return resized[top : top + cfg.crop_size, left : left + cfg.crop_size]


def preprocess_square(image: Image.Image, cfg: SquareConfig) -> np.ndarray:
    """float32 ``[3, S, S]``, rescaled and normalised."""
    pixels = square_pixels(image, cfg)  # uint8 [S, S, 3]
    return normalize_chw(pixels.transpose(2, 0, 1), cfg.rescale_factor, cfg.mean, cfg.std)
