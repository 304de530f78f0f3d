"""Shared cases for the LLaVA tests: image sizes, the published processor settings, test images."""

from __future__ import annotations

import numpy as np
from PIL import Image

from edgevlm.processing.anyres import AnyresConfig
from edgevlm.processing.config import ProcessorConfig
from test_processing_slicing import synthetic_image  # noqa: F401  (deterministic RGB test images)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CLIP = dict(mean=CLIP_MEAN, std=CLIP_STD)
SIGLIP = dict(mean=(0.5,) * 3, std=(0.5,) * 3)

# llava-v1.6-*-hf (preprocessor_config.json) and llava-onevision-qwen2-*-hf as published.
NEXT_REAL = AnyresConfig(tile_size=336, patch_size=14,
                         pinpoints=((336, 672), (672, 336), (672, 672), (1008, 336), (336, 1008))).processor(**CLIP)
ONEVISION_REAL = AnyresConfig(tile_size=384, patch_size=14, max_tiles=9,
                              pinpoints=tuple((384 * i, 384 * j) for i in range(1, 7) for j in range(1, 7))
                              ).processor(**SIGLIP)


def square(mode: str, size: int) -> ProcessorConfig:
    """LLaVA 1.5's processor: CLIP's shortest-edge + centre crop, or LLaVA's mean-colour pad."""
    options = {"mode": mode, "shortest_edge": size} if mode == "crop" else {"mode": mode}
    return ProcessorConfig(kind="square", image_size=size, patch_size=14, options=options, **CLIP)


def _boundaries() -> list[tuple[int, int]]:
    """Sizes at and around the pinpoints of both real configs (where the grid choice flips)."""
    sizes = []
    for side in (336, 384):
        for a, b in ((1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (1, 3), (6, 6), (2, 5)):
            w, h = side * a, side * b
            sizes += [(w, h), (w - 1, h + 1), (w + 1, h - 1), (w + 1, h + 1)]
    return sizes


def image_sizes() -> list[tuple[int, int]]:
    """(width, height) of every case: 230 sizes, deterministic."""
    tiny = [(1, 1), (1, 2), (2, 1), (3, 7), (7, 3), (10, 10), (13, 29), (20, 20), (27, 5), (5, 27), (55, 56), (56, 55)]
    extreme = [(1, 2000), (2000, 1), (5, 3000), (3000, 5), (10, 1500), (1500, 10), (40, 4000), (4000, 40),
               (1, 64), (64, 1), (2, 900), (900, 2), (100, 1), (1, 100)]
    huge = [(3000, 2500), (2500, 3000), (4000, 4000), (2400, 2300), (5000, 1200), (1200, 5000), (2305, 2303)]
    photos = [(640, 480), (480, 640), (1024, 768), (1920, 1080), (1080, 1920), (899, 1024), (1280, 720), (800, 600)]
    rng = np.random.default_rng(20)
    random = [tuple(int(v) for v in np.exp(rng.uniform(np.log(8), np.log(3000), 2))) for _ in range(150)]
    sizes = tiny + extreme + huge + photos + _boundaries() + random
    return list(dict.fromkeys(sizes))  # unique, order kept


def case_image(width: int, height: int) -> Image.Image:
    return synthetic_image(width, height, seed=width * 7 + height)
