"""Native-resolution preprocessing (Qwen2-VL / Qwen2.5-VL) against transformers' own image processor.

Two checks over the same 200+ cases:
- live: ``edgevlm.processing.native_resolution`` vs transformers' ``Qwen2VLImageProcessorPil`` (what
  ``AutoProcessor`` loads from the tiny checkpoint without torchvision): grid equal and pixels
  identical (max abs diff 0.0);
- golden: grids, token counts and pixel hashes in ``tests/golden/processing/qwen2vl_native_resolution.json``,
  written from transformers' output by ``python tests/test_qwen2vl_processing.py --regen`` (transformers
  5.25.0, Pillow 13.0.0); it needs no transformers, so other ports (the Android core) can use it.

Cases: tiny images (1x1 ... 57x57, enlarged to min_pixels), sides at the round-half-to-even points
(70 px = 2.5 tokens), exact multiples of 28, the min_pixels boundary, extreme aspect ratios up to
the 200:1 limit (50x10000), images over max_pixels (shrunk, under four token budgets), an enlarging
min_pixels of 1024 tokens, and log-uniform random sizes.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from qwen2vl_hf import synthetic_image  # noqa: E402

from edgevlm.errors import ImageError  # noqa: E402
from edgevlm.processing.native_resolution import (  # noqa: E402
    NativeResolutionConfig,
    concat_images,
    plan_native_resolution,
    preprocess_native_resolution,
)

GOLDEN = Path(__file__).parent / "golden" / "processing" / "qwen2vl_native_resolution.json"

# (min_pixels, max_pixels) budgets: the published one, three per-request token budgets, an enlarging one
BUDGETS = {"published": (3136, 12845056), "t1024": (3136, 28 * 28 * 1024), "t256": (3136, 28 * 28 * 256),
           "t64": (3136, 28 * 28 * 64), "min1024": (28 * 28 * 1024, 12845056)}


def _cases() -> list[tuple[int, int, str]]:
    tiny = [(1, 1), (1, 2), (2, 1), (3, 3), (5, 7), (7, 5), (10, 10), (13, 13), (13, 14), (14, 13), (14, 14),
            (15, 15), (20, 27), (27, 27), (27, 28), (28, 27), (28, 28), (29, 29), (30, 30), (41, 42), (42, 42),
            (55, 55), (55, 57), (56, 56), (57, 57), (1, 150), (150, 1)]
    half_points = [(70, 70), (42, 70), (70, 42), (98, 98), (126, 126), (154, 98), (182, 210), (238, 266), (69, 71),
                   (71, 69)]
    multiples = [(28 * i, 28 * j) for i in (1, 2, 3, 5, 8, 13, 20, 32) for j in (1, 3, 8, 21)]
    near_min = [(40, 78), (78, 40), (30, 105), (105, 30), (60, 52), (52, 60), (28, 112), (112, 28), (44, 71)]
    extreme = [(1, 200), (200, 1), (2, 400), (400, 2), (50, 10000), (10000, 50), (28, 5600), (5600, 28), (3, 500),
               (500, 3), (100, 19999), (19999, 100), (7, 1400), (1400, 7), (13, 2600), (33, 4321)]
    photos = [(640, 480), (480, 640), (800, 600), (1024, 768), (1280, 720), (720, 1280), (1920, 1080), (1080, 1920),
              (2048, 1536), (1000, 1000), (1366, 768), (333, 777)]
    cases = [(w, h, "published") for w, h in tiny + half_points + multiples + near_min + extreme + photos]
    over_max = [(640, 480), (800, 600), (1000, 1000), (1920, 1080), (1080, 1920), (4000, 3000), (3024, 4032),
                (1234, 567), (9000, 100), (100, 9000), (28 * 40, 28 * 30), (29 * 16, 27 * 16)]
    for budget in ("t1024", "t256", "t64"):
        cases += [(w, h, budget) for w, h in over_max]
    cases += [(w, h, "min1024") for w, h in [(1, 1), (28, 28), (100, 100), (300, 200), (50, 2000), (900, 700)]]
    cases = list(dict.fromkeys(cases))  # unique, in order
    rng = np.random.default_rng(19)
    while len(cases) < 230:
        w, h = (int(v) for v in np.exp(rng.uniform(0, np.log(2500), 2)))
        case = (w, h, "published" if w * h <= 1_500_000 else "t256")
        if max(w, h) / min(w, h) <= 200 and case not in cases:
            cases.append(case)
    return cases


CASES = _cases()
# The default tier compares a spread of ~30 cases live (every kind of case above, small images first);
# the slow tier all of them. The golden check covers every case of up to 0.5 MP by default.
QUICK = set(CASES[::8]) | {(1, 1, "published"), (70, 70, "published"), (50, 10000, "published"),
                           (4000, 3000, "t64"), (1, 1, "min1024"), (98, 98, "published")}
LIVE_CASES = [pytest.param(c, id=f"{c[0]}x{c[1]}-{c[2]}", marks=() if c in QUICK else pytest.mark.slow) for c in CASES]


def _config(budget: str) -> NativeResolutionConfig:
    return NativeResolutionConfig(min_pixels=BUDGETS[budget][0], max_pixels=BUDGETS[budget][1])


def _sha(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.float32).tobytes()).hexdigest()[:16]


@pytest.fixture(scope="module")
def image_processor(tiny):
    pytest.importorskip("transformers")
    from qwen2vl_hf import hf_processor

    processor = hf_processor(tiny("qwen2-vl")).image_processor
    assert type(processor).__name__ == "Qwen2VLImageProcessorPil"  # without torchvision: the Pillow backend
    return processor


def _reference(image_processor, image, budget: str):
    lo, hi = BUDGETS[budget]
    out = image_processor(images=[image], size={"shortest_edge": lo, "longest_edge": hi}, return_tensors="np")
    return out["pixel_values"], out["image_grid_thw"]


def test_cases_cover_the_required_ranges():
    sizes = {(w, h) for w, h, _ in CASES}
    assert len(CASES) >= 200 and len(sizes) >= 150
    assert (1, 1) in sizes and (50, 10000) in sizes and (28, 28) in sizes
    assert any(max(w, h) / min(w, h) == 200 for w, h in sizes)
    cfg = NativeResolutionConfig()
    enlarged = [c for c in CASES if c[0] * c[1] < BUDGETS[c[2]][0]]
    shrunk = [c for c in CASES if plan_native_resolution(c[:2], _config(c[2])).n_patches * 196 < c[0] * c[1] * 0.9]
    assert len(enlarged) >= 20 and len(shrunk) >= 30 and cfg.factor == 28


@pytest.mark.parametrize("case", LIVE_CASES)
def test_pixels_and_grid_equal_transformers(image_processor, case):
    width, height, budget = case
    image = synthetic_image(width, height)
    ours = preprocess_native_resolution(image, _config(budget))
    want_pixels, want_grid = _reference(image_processor, image, budget)
    assert ours.grid_thw.tolist() == want_grid[0].tolist()
    assert ours.pixel_values.shape == want_pixels.shape and ours.pixel_values.dtype == np.float32
    assert float(np.abs(ours.pixel_values - want_pixels).max()) == 0.0


def test_several_images_concatenate_like_the_processor(image_processor):
    images = [synthetic_image(w, h, seed) for seed, (w, h) in enumerate([(300, 200), (41, 1000), (640, 480)])]
    cfg = _config("t256")
    pixels, grids = concat_images([preprocess_native_resolution(image, cfg) for image in images])
    out = image_processor(images=images, size={"shortest_edge": cfg.min_pixels, "longest_edge": cfg.max_pixels},
                          return_tensors="np")
    assert grids.tolist() == out["image_grid_thw"].tolist() and grids.dtype == np.int64
    assert np.array_equal(pixels, out["pixel_values"])


@pytest.mark.parametrize("max_area", [500_000, pytest.param(None, marks=pytest.mark.slow)], ids=["up-to-0.5MP", "all"])
def test_golden_data(max_area):
    golden = json.loads(GOLDEN.read_text())
    assert [tuple(c["case"]) for c in golden["cases"]] == [tuple(c) for c in CASES]
    for record in golden["cases"]:
        width, height, budget = record["case"]
        if max_area is not None and width * height > max_area:
            continue
        ours = preprocess_native_resolution(synthetic_image(width, height), _config(budget))
        assert ours.grid_thw.tolist() == record["grid_thw"], record["case"]
        assert ours.plan.n_tokens == record["tokens"] and list(ours.plan.resized_size) == record["resized"]
        assert _sha(ours.pixel_values) == record["sha"], record["case"]


@pytest.mark.parametrize("size", [(1, 10000), (10000, 1), (49, 10000), (3, 700)])
def test_side_ratio_over_200_is_refused_like_transformers(image_processor, size):
    with pytest.raises(ImageError, match="side ratio over 200"):
        plan_native_resolution(size, NativeResolutionConfig())
    with pytest.raises(ValueError, match="aspect ratio"):
        _reference(image_processor, synthetic_image(*size), "published")


def test_min_above_max_is_refused_where_transformers_misses_the_bounds(image_processor):
    bad = NativeResolutionConfig(min_pixels=1_000_000, max_pixels=100_000)
    with pytest.raises(ImageError, match="min_pixels 1000000 is larger than max_pixels 100000"):
        plan_native_resolution((500, 500), bad)
    # transformers returns a size under min_pixels without a word: the reason we refuse instead
    out = image_processor(images=[synthetic_image(500, 500)], size={"shortest_edge": 1_000_000,
                                                                    "longest_edge": 100_000}, return_tensors="np")
    assert int(np.prod(out["image_grid_thw"][0])) * 14 * 14 < 1_000_000


def test_budgets_below_one_token_are_refused():
    with pytest.raises(ImageError, match="below one 28x28 image token"):
        plan_native_resolution((300, 300), NativeResolutionConfig(min_pixels=100, max_pixels=500))
    with pytest.raises(ImageError, match="min_pixels 0 must be at least 1"):
        plan_native_resolution((300, 300), NativeResolutionConfig(min_pixels=0))
    with pytest.raises(ImageError, match="zero size"):
        plan_native_resolution((0, 10), NativeResolutionConfig())


def test_images_smaller_than_one_token_are_enlarged_like_transformers(image_processor):
    # Decision: not an error. min_pixels enlarges them (the model was trained on such inputs).
    plan = plan_native_resolution((5, 3), NativeResolutionConfig())
    assert plan.resized_size == (84, 56) and plan.n_tokens == 6
    assert _reference(image_processor, synthetic_image(5, 3), "published")[1][0].tolist() == [1, 4, 6]


def test_per_request_budget_sets_the_token_count():
    cfg = NativeResolutionConfig(max_pixels=BUDGETS["published"][1])
    tokens = [plan_native_resolution((4000, 3000), cfg.with_pixels(max_pixels=28 * 28 * n)).n_tokens
              for n in (64, 256, 1024)]
    assert all(t <= n for t, n in zip(tokens, (64, 256, 1024))) and tokens == sorted(tokens)
    assert cfg.with_pixels().max_pixels == BUDGETS["published"][1]


def test_config_from_the_checkpoint_and_the_manifest(tiny):
    data = json.loads((tiny("qwen2-vl") / "preprocessor_config.json").read_text())
    cfg = NativeResolutionConfig.from_preprocessor_config(data)
    assert cfg == NativeResolutionConfig(max_pixels=BUDGETS["published"][1])
    assert NativeResolutionConfig.from_dict(cfg.to_dict()) == cfg  # the manifest round trip
    size_keys = {"size": {"shortest_edge": 100, "longest_edge": 200000}}  # transformers 5 spelling
    assert NativeResolutionConfig.from_preprocessor_config(size_keys).with_pixels() == NativeResolutionConfig(
        min_pixels=100, max_pixels=200000)


def _regen() -> None:
    """Write the golden file from transformers' processor (run by hand; see the module docstring)."""
    import tempfile

    from qwen2vl_hf import hf_processor

    from edgevlm.families.tiny import make_tiny

    processor = hf_processor(make_tiny("qwen2-vl", tempfile.mkdtemp())).image_processor
    records = []
    for width, height, budget in CASES:
        pixels, grid = _reference(processor, synthetic_image(width, height), budget)
        t, h, w = (int(v) for v in grid[0])
        records.append({"case": [width, height, budget], "grid_thw": [t, h, w], "tokens": t * h * w // 4,
                        "resized": [w * 14, h * 14], "sha": _sha(pixels)})
    import transformers
    from PIL import __version__ as pillow

    head = {"source": f"transformers {transformers.__version__} Qwen2VLImageProcessorPil, Pillow {pillow}; "
                      "sha = sha256(float32 pixel_values)[:16]", "budgets": BUDGETS}
    lines = ",\n".join(json.dumps(record) for record in records)  # one case per line: readable diffs
    GOLDEN.write_text(json.dumps(head)[:-1] + ', "cases": [\n' + lines + "\n]}\n")


if __name__ == "__main__" and "--regen" in sys.argv:
    _regen()
