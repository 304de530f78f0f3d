"""InternVL aspect-ratio tiling (edgevlm.processing.aspect_tiles) against transformers' processor.

Golden data: tests/golden/processing/tiles_golden.json (see make_tiles_golden.py beside it), from
transformers' ``GotOcr2ImageProcessorPil`` with ``crop_to_patches=True`` as ``InternVLProcessor``
runs it: tile counts for 448 px tiles with max 12 and max 6 and for the tiny checkpoint's 112 px,
float32 tile hashes for one config per size. Live tests compare in the same run (max abs diff 0).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from edgevlm.processing.aspect_tiles import best_grid, candidate_grids, plan_aspect_tiles, preprocess_aspect_tiles
from tiles_reference import golden_cases, synthetic_image

GOLDEN = json.loads((Path(__file__).parent / "golden" / "processing" / "tiles_golden.json").read_text())
CASES, CONFIGS = GOLDEN["cases"], GOLDEN["meta"]["aspect_configs"]
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def _sha(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.float32).tobytes()).hexdigest()[:16]


def test_golden_covers_the_required_ranges():
    sizes = {tuple(c["size"]) for c in CASES}
    assert len(sizes) >= 200 and {(1, 1), (1, 10000), (448, 448), (449, 448), (896, 448)} <= sizes
    counts = {c["aspect_tiles"]["internvl"] for c in CASES}
    assert {1, 3, 13} <= counts  # one tile, 2 + thumbnail, 12 + thumbnail


def test_candidate_order_is_the_references():
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import get_all_supported_aspect_ratios

    for lo, hi in ((1, 12), (1, 6), (2, 9)):
        assert list(candidate_grids(lo, hi)) == list(get_all_supported_aspect_ratios(lo, hi))


def test_tile_counts_equal_the_reference():
    for case in CASES:
        for key, (tile, lo, hi) in CONFIGS.items():
            assert plan_aspect_tiles(tuple(case["size"]), tile, lo, hi).n_tiles == case["aspect_tiles"][key], \
                (case["size"], key)


@pytest.mark.parametrize("case", golden_cases(CASES))
def test_pixels_equal_the_reference(case):
    check = case["aspect_pixels"]
    tile, lo, hi = CONFIGS[check["config"]]
    out = preprocess_aspect_tiles(synthetic_image(*case["size"]), tile, MEAN, STD, lo, hi)
    assert list(out.pixel_values.shape) == check["shape"] and out.pixel_values.dtype == np.float32
    assert [_sha(t) for t in out.pixel_values] == check["sha"], "pixels differ from transformers'"


def test_ties_follow_the_reference():
    """Exact aspect ties: (1,2)/(2,1) at w/h = 1.25; (2,3)/(3,2)... the area rule picks the later grid."""
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import get_optimal_tiled_canvas

    for w, h in ((5, 4), (500, 400), (1000, 800), (25, 20), (13, 10), (2600, 2000), (1, 1), (448, 448)):
        assert best_grid(w, h, 448, 1, 12) == tuple(get_optimal_tiled_canvas((h, w), (448, 448), 1, 12)), (w, h)


@pytest.mark.parametrize("size", [(1, 10000), (10000, 1), (1, 1), (700, 300), (1000, 800)])
def test_live_against_transformers(size):
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

    image = synthetic_image(*size, seed=3)
    ref = GotOcr2ImageProcessorPil(size={"height": 448, "width": 448}, crop_to_patches=True, resample=3,
                                   image_mean=MEAN, image_std=STD)(image)
    ours = preprocess_aspect_tiles(image, 448, MEAN, STD)
    assert ours.plan.n_tiles == ref["num_patches"][0]
    assert float(np.abs(np.stack(ref["pixel_values"]) - ours.pixel_values).max()) == 0.0
