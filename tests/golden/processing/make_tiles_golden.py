"""Writes tiles_golden.json: transformers' own tiling decisions and pixels for the tiled families.

Run from the repository root (needs transformers; seconds to minutes):
    PYTHONPATH=. python tests/golden/processing/make_tiles_golden.py

For every size in ``sizes()`` it records, from transformers' Pillow-backend processors
(``SmolVLMImageProcessorPil`` = ``Idefics3ImageProcessorPil``; ``GotOcr2ImageProcessorPil`` with
``crop_to_patches=True`` as ``InternVLProcessor`` runs it): the (rows, cols) grid for each square-tile
config and the tile count for each aspect-tile config (``get_number_of_image_patches`` and the
processor output agree; the generator asserts it), and for one pixel config per size the shape and a
sha256 (16 hex) of every output tile's float32 bytes, on ``synthetic_image(w, h)`` from
tests/tiles_reference.py.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests"))

# (tile, longest_edge): SmolVLM-256M/500M, Idefics3-8B, SmolVLM2-2.2B / SmolVLM-Instruct; the tiny checkpoints'.
SQUARE_CONFIGS = {"smolvlm": (512, 2048), "idefics3": (364, 1456), "smolvlm2": (384, 1536),
                  "tiny_smolvlm": (64, 256), "tiny_idefics3": (84, 336)}
# (tile, min, max): InternVL 2.5 / 3 (max 12), the max 6 some deployments use; the tiny checkpoint's.
ASPECT_CONFIGS = {"internvl": (448, 1, 12), "internvl_max6": (448, 1, 6), "tiny_internvl": (112, 1, 12)}
HALF, IMAGENET = ([0.5] * 3, [0.5] * 3), ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def sizes() -> list[tuple[int, int]]:
    """>= 200 (w, h): tiny, extreme strips, exact tile boundaries, over the limits, photos, log-uniform."""
    out = [(w, h) for w in (1, 2, 3, 7) for h in (1, 2, 3, 7)]
    out += [(1, 10000), (10000, 1), (2, 5000), (5000, 2), (16000, 50), (50, 16000), (4096, 1), (1, 4097), (3, 900)]
    for t in (64, 84, 112, 364, 384, 448, 512):
        out += [(t, t), (t + 1, t), (t, t + 1), (t - 1, t - 1), (2 * t, t), (t, 3 * t), (4 * t, 4 * t), (4 * t + 1, 2 * t)]
    out += [(2048, 2048), (2049, 2048), (1456, 1092), (1457, 1), (4096, 4096), (4097, 3000), (6000, 4000),
            (640, 480), (480, 640), (1024, 768), (1280, 720), (1920, 1080), (3024, 4032), (800, 600), (300, 400)]
    rng = np.random.default_rng(2026)
    while len(out) < 210:
        w, h = (int(math.exp(x)) for x in rng.uniform(0, math.log(5000), 2))
        out.append((max(w, 1), max(h, 1)))
    seen: set[tuple[int, int]] = set()
    return [s for s in out if not (s in seen or seen.add(s))]


def sha(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.float32).tobytes()).hexdigest()[:16]


def pixel_config(index: int, w: int, h: int) -> tuple[str, str]:
    """Which square / aspect config gets the pixel check: real sizes for every 4th small case, tiny otherwise."""
    real = index % 4 == 0 and w * h <= 4_000_000
    return ("smolvlm" if index % 8 == 0 else "idefics3") if real else ("tiny_smolvlm" if index % 2 else "tiny_idefics3"), \
        "internvl" if real else "tiny_internvl"


def main() -> None:
    from tiles_reference import synthetic_image
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil
    from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil

    square = {k: SmolVLMImageProcessorPil(size={"longest_edge": e}, max_image_size={"longest_edge": t}, resample=1,
                                          image_mean=HALF[0], image_std=HALF[1]) for k, (t, e) in SQUARE_CONFIGS.items()}
    aspect = {k: GotOcr2ImageProcessorPil(size={"height": t, "width": t}, min_patches=lo, max_patches=hi, resample=3,
                                          crop_to_patches=True, image_mean=IMAGENET[0], image_std=IMAGENET[1])
              for k, (t, lo, hi) in ASPECT_CONFIGS.items()}
    cases = []
    for index, (w, h) in enumerate(sizes()):
        case = {"size": [w, h],
                "square_grids": {k: list(p.get_number_of_image_patches(h, w)[1:]) for k, p in square.items()},
                "aspect_tiles": {k: p.get_number_of_image_patches(h, w, {"crop_to_patches": True})
                                 for k, p in aspect.items()}}
        sq_key, asp_key = pixel_config(index, w, h)
        image = synthetic_image(w, h)
        out = square[sq_key](image, return_row_col_info=True)
        assert [out["rows"][0][0], out["cols"][0][0]] == case["square_grids"][sq_key]
        tiles = out["pixel_values"][0]  # [n, 3, t, t] float32
        case["square_pixels"] = {"config": sq_key, "shape": list(tiles.shape), "sha": [sha(t) for t in tiles]}
        out = aspect[asp_key](image)
        tiles = np.stack(out["pixel_values"])
        assert out["num_patches"][0] == case["aspect_tiles"][asp_key] == len(tiles)
        case["aspect_pixels"] = {"config": asp_key, "shape": list(tiles.shape), "sha": [sha(t) for t in tiles]}
        cases.append(case)
    import PIL
    import transformers

    meta = {"transformers": transformers.__version__, "pillow": PIL.__version__,
            "square_configs": SQUARE_CONFIGS, "aspect_configs": ASPECT_CONFIGS}
    path = Path(__file__).with_name("tiles_golden.json")
    path.write_text(json.dumps({"meta": meta, "cases": cases}, separators=(",", ":")) + "\n")
    print(f"{len(cases)} cases -> {path}")


if __name__ == "__main__":
    main()
