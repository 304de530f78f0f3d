"""LLaVA image processing (anyres tiling, unpadding, OneVision pooling, square crop/pad) vs transformers.

Golden data (``tests/golden/processing/llava_anyres.json``) holds transformers' own answers for 254
image sizes (``llava_cases.image_sizes``: tiny, extreme aspect ratios up to 4000:1, larger than every
pinpoint, at and around the pinpoints, photos, 150 log-uniform random ones), written by running this
file as a script (``python tests/test_llava_processing.py``) with transformers 5.25 / Pillow 13:

* for the published LLaVA-NeXT and LLaVA-OneVision settings: the chosen pinpoint
  (``image_processing_utils.select_best_resolution``), the number of tiles the model splits off
  (``modeling_llava_next.image_size_to_num_patches``) and the image-token count
  (``LlavaNextProcessor`` / ``LlavaOnevisionProcessor._get_number_of_features``);
* for the tiny checkpoints' settings (tiles of 56 / 72 px): a sha256 of the float32 pixel_values of
  ``CLIPImageProcessorPil``, ``LlavaImageProcessorPil(do_pad=True)``, ``LlavaNextImageProcessorPil``
  and ``LlavaOnevisionImageProcessorPil`` on ``llava_cases.case_image``.

The golden tests need neither torch nor transformers; the live tests recompute transformers' side.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from edgevlm.errors import ImageError
from edgevlm.processing.anyres import AnyresConfig, plan_anyres, plan_base_only, plan_for_prompt, select_best_resolution
from edgevlm.processing.anyres_features import pack_anyres_features
from edgevlm.processing.anyres_image import preprocess_anyres
from edgevlm.processing.config import ProcessorConfig
from edgevlm.processing.square import preprocess_square
from llava_cases import CLIP, CLIP_MEAN, CLIP_STD, NEXT_REAL, ONEVISION_REAL, SIGLIP, case_image, image_sizes, square

GOLDEN = Path(__file__).parent / "golden" / "processing" / "llava_anyres.json"

# The tiny checkpoints' image settings (edgevlm/families/llava/tiny.py), for the pixel hashes.
TINY_NEXT = AnyresConfig(tile_size=56, patch_size=14,
                         pinpoints=((56, 112), (112, 56), (112, 112), (168, 56), (56, 168))).processor(**CLIP)
TINY_ONEVISION = AnyresConfig(tile_size=72, patch_size=14, max_tiles=9,
                              pinpoints=tuple((72 * i, 72 * j) for i in range(1, 7) for j in range(1, 7))
                              ).processor(**SIGLIP)
TINY_CROP, TINY_PAD = square("crop", 56), square("pad", 56)


def _grid(cfg: ProcessorConfig) -> AnyresConfig:
    return AnyresConfig.from_processor(cfg)


def _anyres_pixels(image, cfg: ProcessorConfig, n_images: int = 1) -> np.ndarray:
    """Our pixels of one image in a prompt of ``n_images`` (plan from the size, then the pixels)."""
    return preprocess_anyres(image, cfg, plan_for_prompt(image.height, image.width, _grid(cfg), n_images))


def _sha(pixels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(pixels, dtype=np.float32).tobytes()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------
# transformers' side (golden writer and live tests)


def _hf_image_processors(tiny: bool):
    import transformers as tf

    nxt, ov = (_grid(TINY_NEXT), _grid(TINY_ONEVISION)) if tiny else (_grid(NEXT_REAL), _grid(ONEVISION_REAL))
    side = {"shortest_edge": nxt.tile_size}
    crop = {"height": nxt.tile_size, "width": nxt.tile_size}
    return {
        "llava": tf.CLIPImageProcessorPil(size=side, crop_size=crop, image_mean=CLIP_MEAN, image_std=CLIP_STD, resample=3),
        "llava-pad": tf.LlavaImageProcessorPil(size=side, crop_size=crop, image_mean=CLIP_MEAN, image_std=CLIP_STD,
                                               resample=3, do_pad=True),
        "llava-next": tf.LlavaNextImageProcessorPil(size=side, crop_size=crop, image_grid_pinpoints=[list(p) for p in nxt.pinpoints],
                                                    image_mean=CLIP_MEAN, image_std=CLIP_STD, resample=3),
        "llava-onevision": tf.LlavaOnevisionImageProcessorPil(
            size={"height": ov.tile_size, "width": ov.tile_size}, image_grid_pinpoints=[list(p) for p in ov.pinpoints],
            image_mean=[0.5] * 3, image_std=[0.5] * 3, resample=3),
    }


def _hf_processors():
    """transformers' NeXT / OneVision processors at the published settings (a tiny tokenizer; only
    their image-token arithmetic is used)."""
    import transformers as tf

    from edgevlm.families.llava.reference import onevision_processor_class
    from edgevlm.testing.tiny_tokenizer import build_tokenizer

    tokenizer = tf.PreTrainedTokenizerFast(tokenizer_object=build_tokenizer("bytelevel", ["<image>", "<video>"]))
    images = _hf_image_processors(tiny=False)
    nxt = tf.LlavaNextProcessor(image_processor=images["llava-next"], tokenizer=tokenizer, patch_size=14,
                                vision_feature_select_strategy="default", num_additional_image_tokens=1)
    ov = onevision_processor_class()(image_processor=images["llava-onevision"], tokenizer=tokenizer,
                                             num_image_tokens=729, vision_feature_select_strategy="full")
    return nxt, ov


def transformers_facts(width: int, height: int, processors, image_processors) -> dict:
    from transformers.image_processing_utils import select_best_resolution as hf_best
    from transformers.models.llava_next.modeling_llava_next import image_size_to_num_patches

    facts = {"size": [width, height]}
    for key, proc, cfg in (("next", processors[0], _grid(NEXT_REAL)), ("onevision", processors[1], _grid(ONEVISION_REAL))):
        pins = [list(p) for p in cfg.pinpoints]
        tokens = proc._get_number_of_features(height, width, cfg.tile_size, cfg.tile_size)
        if key == "next":
            tokens -= 1  # strategy "default": the CLS token the processor counts is dropped
        facts[key] = {"best": list(hf_best((height, width), pins)),
                      "chunks": image_size_to_num_patches((height, width), pins, cfg.tile_size), "tokens": tokens}
    image = case_image(width, height)
    facts["pixels"] = {name: _sha(ip(image, return_tensors="np")["pixel_values"][0])
                       for name, ip in image_processors.items()}
    return facts


def write_golden() -> None:
    processors, image_processors = _hf_processors(), _hf_image_processors(tiny=True)
    cases = [transformers_facts(w, h, processors, image_processors) for w, h in image_sizes()]
    GOLDEN.write_text(json.dumps({"cases": cases}, separators=(",", ":")) + "\n")


def _golden() -> list[dict]:
    return json.loads(GOLDEN.read_text())["cases"]


# ---------------------------------------------------------------------------------------------------
# golden tests: our planner and pixels against transformers' recorded answers


def test_golden_covers_the_required_ranges():
    sizes = [tuple(case["size"]) for case in _golden()]
    assert len(sizes) >= 200 and len(set(sizes)) == len(sizes)
    assert any(w * h <= 4 for w, h in sizes), "tiny images"
    assert any(max(w, h) / min(w, h) >= 1000 for w, h in sizes), "extreme aspect ratios"
    assert any(w > 2304 and h > 2304 for w, h in sizes), "larger than every pinpoint"
    onevision_pooled = [case for case in _golden() if case["onevision"]["chunks"] - 1 > 9]
    assert len(onevision_pooled) >= 20, "OneVision grids above its 9-tile budget"


@pytest.mark.parametrize("key,processor", [("next", NEXT_REAL), ("onevision", ONEVISION_REAL)])
def test_plan_matches_transformers_on_every_size(key, processor):
    from edgevlm.runtime.images import image_kind

    cfg, bad, kind = _grid(processor), [], image_kind(processor)
    for case in _golden():
        width, height = case["size"]
        want = case[key]
        plan = plan_anyres(height, width, cfg)
        got = {"best": [plan.best_height, plan.best_width], "chunks": plan.n_chunks, "tokens": plan.n_tokens}
        runtime = kind.plan((width, height), processor, 0, 1)  # the processor kind's plan, as the runtime makes it
        if got != want or (runtime.n_tokens, runtime.data["chunks"]) != (want["tokens"], want["chunks"]):
            bad.append((case["size"], got, want))
    assert not bad, f"{len(bad)} sizes differ, first: {bad[:3]}"


OURS = {"llava": lambda im: preprocess_square(im, TINY_CROP), "llava-pad": lambda im: preprocess_square(im, TINY_PAD),
        "llava-next": lambda im: _anyres_pixels(im, TINY_NEXT),
        "llava-onevision": lambda im: _anyres_pixels(im, TINY_ONEVISION)}
PAD_SIDE_LIMIT = 1600  # "pad" pastes onto a max(w, h)^2 square: the 59 larger sizes take most of the time


def _pixel_mismatches(cases, pad_side_limit: int) -> list:
    bad = []
    for case in cases:
        image = case_image(*case["size"])
        for name, run in OURS.items():
            if name == "llava-pad" and max(case["size"]) > pad_side_limit:
                continue
            if _sha(run(image)) != case["pixels"][name]:
                bad.append((case["size"], name))
    return bad


def test_pixels_match_transformers_on_every_size():
    """Bit-identical float32 pixel_values (sha256) for all 254 sizes ("pad": the 195 up to 1600 px)."""
    bad = _pixel_mismatches(_golden(), PAD_SIDE_LIMIT)
    assert not bad, f"{len(bad)} (size, processor) pairs differ, first: {bad[:5]}"


@pytest.mark.slow
def test_pad_pixels_match_transformers_on_large_sizes():
    large = [case for case in _golden() if max(case["size"]) > PAD_SIDE_LIMIT]
    assert not _pixel_mismatches(large, pad_side_limit=10**9)


def test_select_best_resolution_prefers_kept_pixels_then_less_waste():
    pins = ((336, 672), (672, 336), (672, 672))
    assert select_best_resolution(300, 600, pins) == (336, 672)  # a wide image keeps all its pixels in 336x672
    assert select_best_resolution(1000, 1000, pins) == (672, 672)
    # an image too thin to keep any pixel still gets a pinpoint: the least wasteful one (transformers' tie rule)
    assert select_best_resolution(1, 10_000, ((672, 672), (336, 672))) == (336, 672)


def test_bad_sizes_and_configs_are_clear_errors():
    with pytest.raises(ImageError, match="zero size"):
        plan_anyres(0, 10, _grid(NEXT_REAL))
    with pytest.raises(ImageError, match="zero size"):
        plan_base_only(5, 0, _grid(ONEVISION_REAL))
    with pytest.raises(ValueError, match="not a multiple of the tile size"):
        AnyresConfig(tile_size=336, pinpoints=((336, 700),))
    with pytest.raises(ValueError, match="needs options.pinpoints"):
        AnyresConfig.from_processor(ProcessorConfig(kind="anyres", image_size=336))
    with pytest.raises(ValueError, match="larger than the resized shorter side"):
        preprocess_square(case_image(20, 30), ProcessorConfig(kind="square", image_size=336,
                                                              options={"mode": "crop", "shortest_edge": 224}))
    with pytest.raises(ValueError, match="mode must be one of"):
        preprocess_square(case_image(20, 30), ProcessorConfig(kind="square", image_size=336, options={"mode": "fit"}))


def test_packing_rejects_features_of_another_image():
    plan = plan_anyres(400, 300, _grid(TINY_NEXT))
    with pytest.raises(ValueError, match="expected features"):
        pack_anyres_features(np.zeros((plan.n_chunks + 1, 16, 8), np.float32), plan, np.zeros(8, np.float32))


# ---------------------------------------------------------------------------------------------------
# live tests: transformers in this run


def test_golden_is_transformers_today():
    """The recorded answers are still what transformers computes (arithmetic for all sizes, pixels for ~10)."""
    pytest.importorskip("transformers")
    processors, image_processors = _hf_processors(), _hf_image_processors(tiny=True)
    for index, case in enumerate(_golden()):
        sample = index % 26 == 0 and max(case["size"]) <= 1600  # pixels of ~10 sizes (large ones: the slow tier)
        live = transformers_facts(*case["size"], processors, image_processors if sample else {})
        assert {k: v for k, v in live.items() if k != "pixels"} == {k: v for k, v in case.items() if k != "pixels"}
        assert all(case["pixels"][name] == sha for name, sha in live["pixels"].items()), case["size"]


# The sizes whose published-size tiles take seconds each run in the slow tier.
REAL_SIZES = [(640, 480), (480, 640), (1000, 200), (336, 1008), (50, 50), (899, 1024), (700, 700), (1153, 383)] + [
    pytest.param(size, marks=pytest.mark.slow) for size in ((1, 500), (2000, 1500), (4000, 40), (3000, 2500))]


@pytest.mark.parametrize("size", REAL_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_pixels_equal_transformers_at_published_settings(size):
    """Max abs difference 0 at 336 px (CLIP crop, LLaVA pad, NeXT) and 384 px (OneVision, alone and with others)."""
    pytest.importorskip("transformers")
    image = case_image(*size)
    hf = _hf_image_processors(tiny=False)
    crop, pad = square("crop", 336), square("pad", 336)
    pairs = [
        (hf["llava"](image, return_tensors="np")["pixel_values"][0], preprocess_square(image, crop)),
        (hf["llava-pad"](image, return_tensors="np")["pixel_values"][0], preprocess_square(image, pad)),
        (hf["llava-next"](image, return_tensors="np")["pixel_values"][0], _anyres_pixels(image, NEXT_REAL)),
        (hf["llava-onevision"](image, return_tensors="np")["pixel_values"][0], _anyres_pixels(image, ONEVISION_REAL)),
        (hf["llava-onevision"]([[image, image]], return_tensors="np")["pixel_values"][0],
         _anyres_pixels(image, ONEVISION_REAL, n_images=2)),
    ]
    for reference, ours in pairs:
        assert reference.shape == ours.shape
        assert float(np.abs(reference - ours).max()) == 0.0


def _hf_pack(model_class, cfg: AnyresConfig, tiles, height: int, width: int):
    """transformers' own ``pack_image_features`` (it reads only ``self.config``), on our tile tensor."""
    import torch

    pins = [list(p) for p in cfg.pinpoints]
    config = SimpleNamespace(vision_config=SimpleNamespace(image_size=cfg.tile_size, patch_size=cfg.patch_size),
                             image_grid_pinpoints=pins)
    newline = torch.tensor([-1.0, -1.0])
    sizes = torch.tensor([[height, width]])
    if cfg.max_tiles is None:
        out, _ = model_class.pack_image_features(SimpleNamespace(config=config), [torch.from_numpy(tiles)], sizes,
                                                 "default", image_newline=newline)
    else:
        out, _ = model_class.pack_image_features(SimpleNamespace(config=config), [torch.from_numpy(tiles)], sizes,
                                                 image_newline=newline, vision_aspect_ratio=f"anyres_max_{cfg.max_tiles}")
    return out[0].numpy()


@pytest.mark.parametrize("processor", [NEXT_REAL, ONEVISION_REAL], ids=["next", "onevision"])
def test_feature_packing_equals_transformers_on_every_size(processor):
    """Each tile token carries its (row, column) in the grid's feature map, so the packed output shows
    exactly which map cells survive unpadding, how pooling blends them, and where the newlines go."""
    pytest.importorskip("transformers")
    from transformers.models.llava_next.modeling_llava_next import LlavaNextModel
    from transformers.models.llava_onevision.modeling_llava_onevision import LlavaOnevisionModel

    cfg = _grid(processor)
    model_class = LlavaNextModel if cfg.max_tiles is None else LlavaOnevisionModel
    side = cfg.feature_side
    worst = 0.0
    for case in _golden():
        width, height = case["size"]
        plan = plan_anyres(height, width, cfg)
        ys, xs = np.meshgrid(np.arange(plan.grid_rows * side), np.arange(plan.grid_cols * side), indexing="ij")
        coords = np.stack([ys, xs], -1).astype(np.float32)  # [Y, X, 2] map coordinates
        tiles = coords.reshape(plan.grid_rows, side, plan.grid_cols, side, 2).transpose(0, 2, 1, 3, 4)
        tiles = tiles.reshape(plan.n_tiles, side * side, 2)
        base = np.full((1, side * side, 2), -2.0, np.float32)
        features = np.concatenate([base, tiles])  # [n_chunks, side*side, 2]
        ours = pack_anyres_features(features, plan, np.array([-1.0, -1.0], np.float32))
        reference = _hf_pack(model_class, cfg, features, height, width)
        assert ours.shape == reference.shape == (plan.n_tokens, 2), case["size"]
        if not plan.pooled:
            assert np.array_equal(ours, reference), case["size"]
        worst = max(worst, float(np.abs(ours - reference).max()))
    assert worst <= 1e-4  # bilinear pooling: float32 rounding of map coordinates up to ~160


if __name__ == "__main__":  # python tests/test_llava_processing.py: rewrite the golden file
    write_golden()
    print(f"wrote {GOLDEN} ({math.ceil(GOLDEN.stat().st_size / 1024)} KiB)")


def test_processing_and_spec_import_no_torch():
    """The runtime side (pixels, packing, prompts, the checkpoint's torch-free data) never loads torch."""
    import subprocess
    import sys

    code = ("import sys; import edgevlm.processing.anyres_image, edgevlm.processing.anyres_features, "
            "edgevlm.runtime.images; "
            "bad = [m for m in ('torch', 'transformers') if m in sys.modules]; assert not bad, bad")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
