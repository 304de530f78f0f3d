"""A deterministic picture with structure, for parity checks, reports, benchmarks and the demo (no torch)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def sample_image(width: int = 640, height: int = 480, seed: int = 0) -> Image.Image:
    """Gradients + blocks + noise; 640x480 slices into 2 for LLaVA-UHD slicing."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // width, y * 255 // height, ((x // 40 + y // 40) % 2) * 200], axis=-1)
    pixels = np.clip(pixels + rng.randint(-20, 21, pixels.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)
