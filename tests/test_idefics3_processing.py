"""SmolVLM / Idefics3 square tiling (edgevlm.processing.square_tiles) against transformers' processor.

Golden data: tests/golden/processing/tiles_golden.json, written by make_tiles_golden.py beside it from
transformers' ``SmolVLMImageProcessorPil`` (= ``Idefics3ImageProcessorPil``; transformers and Pillow
versions in its ``meta``): 208 sizes from 1x1 to 16000x50, grids for five configs (SmolVLM 512/2048,
Idefics3 364/1456, SmolVLM2 384/1536 and the two tiny checkpoints'), float32 tile hashes for one
config per size. The live tests compare with the processor in the same run (max abs diff 0).
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgevlm.processing.images import load_image
from edgevlm.processing.square_tiles import plan_tiles, preprocess_square_tiles
from tiles_reference import golden_cases, synthetic_image

GOLDEN = json.loads((Path(__file__).parent / "golden" / "processing" / "tiles_golden.json").read_text())
CASES, CONFIGS = GOLDEN["cases"], GOLDEN["meta"]["square_configs"]
HALF = [0.5, 0.5, 0.5]


def _sha(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.float32).tobytes()).hexdigest()[:16]


def test_golden_covers_the_required_ranges():
    sizes = {tuple(c["size"]) for c in CASES}
    assert len(sizes) >= 200
    assert {(1, 1), (1, 10000), (10000, 1), (512, 512), (513, 512), (2048, 2048), (2049, 2048)} <= sizes
    assert any(max(w, h) > 4096 for w, h in sizes)  # over the 4096 cap
    real = [c for c in CASES if c["square_pixels"]["config"] in ("smolvlm", "idefics3")]
    assert len(real) >= 40  # pixels at real tile sizes, not only the tiny ones


def test_grids_equal_the_reference():
    for case in CASES:
        for key, (tile, longest) in CONFIGS.items():
            plan = plan_tiles(tuple(case["size"]), tile, longest)
            assert [plan.rows, plan.cols] == case["square_grids"][key], (case["size"], key)


@pytest.mark.parametrize("case", golden_cases(CASES))
def test_pixels_equal_the_reference(case):
    check = case["square_pixels"]
    tile, longest = CONFIGS[check["config"]]
    out = preprocess_square_tiles(synthetic_image(*case["size"]), tile, longest, HALF, HALF)
    assert list(out.pixel_values.shape) == check["shape"] and out.pixel_values.dtype == np.float32
    assert [_sha(t) for t in out.pixel_values] == check["sha"], "pixels differ from transformers'"


def _reference(image, tile, longest, **kwargs):
    from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil

    processor = SmolVLMImageProcessorPil(size={"longest_edge": longest}, max_image_size={"longest_edge": tile},
                                         resample=1, image_mean=HALF, image_std=HALF, **kwargs)
    return processor(image, return_row_col_info=True)


@pytest.mark.parametrize("size", [(1, 10000), (10000, 1), (1, 1), (700, 300), (513, 2049)])
def test_live_against_transformers(size):
    pytest.importorskip("transformers")
    image = synthetic_image(*size, seed=5)
    ref = _reference(image, 512, 2048)
    ours = preprocess_square_tiles(image, 512, 2048, HALF, HALF)
    assert ours.grid == (ref["rows"][0][0], ref["cols"][0][0])
    assert float(np.abs(ref["pixel_values"][0] - ours.pixel_values).max()) == 0.0


def test_without_splitting_is_one_square_image():
    pytest.importorskip("transformers")
    image = synthetic_image(900, 200)
    ref = _reference(image, 364, 1456, do_image_splitting=False)
    ours = preprocess_square_tiles(image, 364, 1456, HALF, HALF, split=False)
    assert ours.grid == (0, 0) and ours.pixel_values.shape == (1, 3, 364, 364)
    assert float(np.abs(ref["pixel_values"][0] - ours.pixel_values).max()) == 0.0


def test_16_bit_png_goes_through_load_image():
    """A 16-bit PNG is scaled to 8 bits by load_image (transformers' own convert("RGB") clips at 255
    instead; see NOTES.md); from the decoded RGB image on, the pixels equal transformers'."""
    pytest.importorskip("transformers")
    values = (np.arange(300 * 200, dtype=np.uint32).reshape(200, 300) * 37 % 65536).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, format="PNG")
    image = load_image(buffer.getvalue())
    assert image.mode == "RGB" and np.asarray(image).max() > 200  # scaled, not clipped to a white image
    ref = _reference(image, 512, 2048)
    ours = preprocess_square_tiles(image, 512, 2048, HALF, HALF)
    assert float(np.abs(ref["pixel_values"][0] - ours.pixel_values).max()) == 0.0
