"""Turn whatever the user gives us (a path, bytes, a Pillow image) into a plain 8-bit RGB image.

The processors downstream assume RGB; this is the one place that decides how other modes become
RGB, and that turns every decoding failure into one ``ImageError`` line naming the file.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from edgevlm.errors import ImageError

# 128 megapixels: above any phone camera (108 MP sensors give 12000x9000) yet small enough that
# a decoded RGB image (384 MB) does not take a device down. Pillow's own bomb check (179 MP)
# would fire later and only as a warning below that.
DEFAULT_MAX_PIXELS = 128_000_000

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | Image.Image

_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_HIGH_DEPTH_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}  # 16-bit (and 32-bit int) grayscale


def _describe(src: ImageSource) -> str:
    if isinstance(src, (str, os.PathLike)):
        return str(src)
    if isinstance(src, Image.Image):
        return getattr(src, "filename", "") or "<PIL image>"
    return "<image bytes>"


def _open(src: ImageSource, name: str) -> Image.Image:
    if isinstance(src, Image.Image):
        return src
    try:
        if isinstance(src, (bytes, bytearray, memoryview)):
            return Image.open(io.BytesIO(bytes(src)))
        if not isinstance(src, (str, os.PathLike)):
            raise ImageError(f"cannot read an image from a {type(src).__name__}; give a path, bytes or a PIL image")
        path = Path(src)
        if not path.is_file():
            raise ImageError(f"{name}: no such image file; check the path")
        return Image.open(path)
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{name}: image is too large to decode safely ({exc}); downscale it first") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name}: not a readable image ({exc}); give a JPEG/PNG/WebP/... file") from None


def _check_size(image: Image.Image, name: str, max_pixels: int | None) -> None:
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageError(f"{name}: image has zero size {width}x{height}; give an image with pixels")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageError(
            f"{name}: image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}; "
            "downscale it or raise max_pixels"
        )


def _high_depth_to_l(image: Image.Image) -> Image.Image:
    """16-bit grayscale to 8-bit by scaling (Pillow's convert("L") would clip at 255 instead)."""
    values = np.asarray(image).astype(np.float64)  # [h, w]
    scaled = np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8)  # 65535 -> 255
    return Image.fromarray(scaled, "L")


def to_rgb(image: Image.Image) -> Image.Image:
    """Plain RGB: alpha is composited on white; palette, gray, CMYK, 16-bit and float are converted."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P":
        # Palette images with a transparent index behave like RGBA.
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode in _HIGH_DEPTH_MODES:
        return _high_depth_to_l(image).convert("RGB")
    if mode == "F":
        values = np.clip(np.rint(np.asarray(image, dtype=np.float64)), 0, 255).astype(np.uint8)
        return Image.fromarray(values, "L").convert("RGB")
    # "1", "L", "CMYK", "YCbCr", "LAB", "HSV", ...: Pillow's conversion is the right one.
    return image.convert("RGB")


def load_image(src: ImageSource, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode ``src`` to an upright 8-bit RGB Pillow image.

    ``src`` is a path, encoded bytes, or a Pillow image. EXIF orientation is applied. Raises
    ``ImageError`` (one line naming the file) for a missing, corrupt, truncated or zero-sized image
    or one with more than ``max_pixels`` pixels (checked from the header, before decoding).
    """
    name = _describe(src)
    image = _open(src, name)
    _check_size(image, name, max_pixels)  # header size: refuse bombs before decoding them
    try:
        with warnings.catch_warnings():
            # Our own limit already applied; Pillow's bomb warning would only add noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.load()
            upright = ImageOps.exif_transpose(image)
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{name}: image is too large to decode safely ({exc}); downscale it first") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"{name}: image data is corrupt or truncated ({exc}); re-export or re-download it") from None
    upright = upright if upright is not None else image
    _check_size(upright, name, max_pixels)
    return to_rgb(upright)
