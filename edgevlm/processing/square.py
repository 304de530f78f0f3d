"""Square vision inputs from images of any aspect ratio: CLIP's crop and LLaVA's pad (processor kind "square").

Two ways transformers' Pillow image processors make an ``S x S`` input (5.x, without torchvision;
exact to them bit for bit, see tests/test_llava_processing.py). ``ProcessorConfig.image_size`` is
``S`` and ``options["mode"]`` says which:

* ``"crop"``: ``CLIPImageProcessorPil`` (the published llava-1.5-*-hf checkpoints): resize so the
  shorter side is ``options["shortest_edge"]`` (the longer side ``int(edge * long / short)``), then
  centre-crop ``S`` (offsets ``(h - S) // 2``, ``(w - S) // 2``);
* ``"pad"``: ``LlavaImageProcessorPil(do_pad=True)`` (the original LLaVA-1.5 "pad" aspect mode) and
  ``LlavaOnevisionImageProcessorPil`` for an image that shares its prompt with other images: paste
  the image centred on a square of the mean colour (``int(mean * 255)`` per channel), then resize
  that square to ``S``.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from edgevlm.processing.config import ProcessorConfig
from edgevlm.processing.images import to_rgb
from edgevlm.processing.normalize import normalize_chw
from edgevlm.processing.preprocess import _RESAMPLE as RESAMPLE

MODES = ("crop", "pad")


def square_options(cfg: ProcessorConfig) -> tuple[str, int]:
    """(mode, shortest edge) of a "square" processor, checked."""
    mode = cfg.options.get("mode", "crop")
    if mode not in MODES:
        raise ValueError(f"square processor mode must be one of {MODES}, not {mode!r}")
    edge = int(cfg.options.get("shortest_edge", cfg.image_size))
    if mode == "crop" and edge < cfg.image_size:
        raise ValueError(f"square crop of {cfg.image_size} px is larger than the resized shorter side {edge}")
    return mode, edge


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


def padded_square(image: Image.Image, size: int, mean, resample: str) -> np.ndarray:
    """uint8 ``[size, size, 3]``: the image on a mean-coloured square, resized."""
    square = pad_to_square(to_rgb(image), pad_color(mean))
    return np.asarray(square.resize((size, size), resample=RESAMPLE[resample]))


def cropped_square(image: Image.Image, edge: int, size: int, resample: str) -> np.ndarray:
    """uint8 ``[size, size, 3]``: shorter side resized to ``edge``, then the centre ``size`` square."""
    image = to_rgb(image)
    resized = np.asarray(image.resize(shortest_edge_size(*image.size, edge), resample=RESAMPLE[resample]))  # [h, w, 3]
    top = (resized.shape[0] - size) // 2
    left = (resized.shape[1] - size) // 2
    return resized[top : top + size, left : left + size]


def square_pixels(image: Image.Image, cfg: ProcessorConfig) -> np.ndarray:
    """uint8 ``[S, S, 3]``: the square the vision tower sees, before normalisation."""
    mode, edge = square_options(cfg)
    if mode == "pad":
        return padded_square(image, cfg.image_size, cfg.mean, cfg.resample)
    return cropped_square(image, edge, cfg.image_size, cfg.resample)


def preprocess_square(image: Image.Image, cfg: ProcessorConfig) -> np.ndarray:
    """float32 ``[3, S, S]``, rescaled and normalised."""
    pixels = square_pixels(image, cfg)  # uint8 [S, S, 3]
    return normalize_chw(pixels.transpose(2, 0, 1), cfg.rescale_factor, cfg.mean, cfg.std)
