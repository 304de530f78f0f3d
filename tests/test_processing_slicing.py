"""MiniCPM-V slicing + normalisation + patch packing against golden data from the reference processor.

Where the golden data came from (``tests/golden/processing/minicpmv_slicing.json``): the HF
remote-code ``image_processing_minicpmv.py`` of MiniCPM-V 2.6, from GitHub
``404805854/minicpmv2.6-onnx`` at commit 48804ee7110d544e367f808ff8f74c04048b78fb, run outside this
repository (its code is not copied here) with transformers 5.23.0 and Pillow 13.0.0. For every case
the generator built ``synthetic_image(w, h, seed)`` (the function below, byte-identical in the
generator) and recorded:

* ``MiniCPMVImageProcessor.slice_image(img, max_slice_nums, 448, 14)``: the grid, the size of every
  piece (overview first, then slices row by row) and a sha256 (first 16 hex digits) of each piece's
  RGB bytes. The 2.5-era processor (``HwwwwwwwH/MiniCPM-V-2`` at 84ce9b02a1725e27ecd3a7d820b7cad75a123d83,
  ``image_processing_minicpmv.py``, the one MiniCPM-Llama3-V 2.5 ships) was run on the same images and
  gave identical grids and pixels (the generator asserted it);
* ``preprocess(img, max_slice_nums=m)``: the shape and float32-bytes sha of every ``[3, 14, L]`` chunk
  and the ``tgt_sizes``. (The reference guesses the channel axis from the *input* image and crashes
  on images 1 or 3 px high; the generator told it the images are HWC. That is a reference bug we
  do not reproduce.)
* ``get_sliced_grid``, ``find_best_resize`` and ``get_refine_size`` for every ``max_slice_nums`` 1..16.

240 sizes: tiny (1x1 ...), the 448 / 448² boundaries, common photos, huge (up to 7680x4320),
extreme aspect ratios (16000x50 ...) and log-uniform random ones; ``max_slice_nums`` cycles 1..16
for the pixel checks (9 for images over 8 MP, to keep this file under a minute).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgevlm.processing.config import ProcessorConfig
from edgevlm.processing.patchify import batch_chunks, reshape_by_patch
from edgevlm.processing.preprocess import pack_slices, preprocess_slices
from edgevlm.processing.slicing import (
    crop_slices,
    find_best_resize,
    get_refine_size,
    get_sliced_grid,
    plan_slices,
    resize_for_plan,
    slice_image,
)

GOLDEN = Path(__file__).parent / "golden" / "processing" / "minicpmv_slicing.json"
CASES = json.loads(GOLDEN.read_text())["cases"]


def synthetic_image(width: int, height: int, seed: int = 0) -> Image.Image:
    """Deterministic RGB test image: hash noise (tiled 263x257) plus half-amplitude ramps."""
    ty = np.arange(263, dtype=np.uint32)[:, None]
    tx = np.arange(257, dtype=np.uint32)[None, :]
    hsh = ((tx * np.uint32(73856093)) ^ (ty * np.uint32(19349663)) ^ np.uint32(seed * 83492791 % 2**32)) * np.uint32(
        2654435761
    )
    tile = np.stack([(hsh >> 8) & 127, (hsh >> 16) & 127, (hsh >> 24) & 127], axis=-1).astype(np.uint8)  # [263, 257, 3]
    reps = (-(-height // 263), -(-width // 257), 1)
    noise = np.tile(tile, reps)[:height, :width]  # [h, w, 3]
    ramp_x = (np.arange(width, dtype=np.uint32) * 127 // max(width - 1, 1)).astype(np.uint8)  # [w]
    ramp_y = (np.arange(height, dtype=np.uint32) * 127 // max(height - 1, 1)).astype(np.uint8)  # [h]
    out = noise
    out[..., 0] += ramp_x[None, :]
    out[..., 1] += ramp_y[:, None]
    out[..., 2] += (ramp_x[None, :] >> 1) + (ramp_y[:, None] >> 1)
    return Image.fromarray(out, "RGB")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def test_golden_covers_the_required_ranges():
    sizes = {tuple(c["size"]) for c in CASES}
    assert len(sizes) >= 200
    assert {c["max_slice_nums"] for c in CASES} == set(range(1, 17))
    assert all(len(c["grids_by_msn"]) == 16 for c in CASES)
    assert any(w * h > 12_000_000 for w, h in sizes) and any(max(w, h) / min(w, h) > 100 for w, h in sizes)
    assert (1, 1) in sizes and (448, 448) in sizes and (449, 448) in sizes


def test_synthetic_image_is_the_generators():
    # Golden hashes only mean something if this is the generator's image: the 1x1 case is the pixel itself.
    assert CASES[0]["size"] == [1, 1] and CASES[0]["piece_sha"][0] == _sha(
        synthetic_image(1, 1, 0).resize(tuple(CASES[0]["piece_sizes"][0]), Image.Resampling.BICUBIC).tobytes()
    )


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['size'][0]}x{c['size'][1]}")
def test_grid_and_sizes_for_every_max_slice_nums(case):
    size = tuple(case["size"])
    for msn, grid, overview, refine in zip(range(1, 17), case["grids_by_msn"], case["overview_by_msn"], case["refine_by_msn"]):
        assert get_sliced_grid(size, msn) == grid, f"max_slice_nums={msn}"
        plan = plan_slices(size, msn)
        assert plan.grid == grid and list(plan.overview_size) == overview
        if grid is None:
            assert list(find_best_resize(size, 448, 14, allow_upscale=True)) == overview and plan.refine_size is None
        else:
            assert list(find_best_resize(size, 448, 14)) == overview
            assert list(get_refine_size(size, grid, 448, 14, allow_upscale=True)) == refine == list(plan.refine_size)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['size'][0]}x{c['size'][1]}-m{c['max_slice_nums']}")
def test_pieces_and_chunks_equal_the_reference(case):
    w, h = case["size"]
    image = synthetic_image(w, h, case["seed"])
    msn = case["max_slice_nums"]
    # The two resizes are shared by the piece check and the chunk check (the public functions
    # below are these same steps; PUBLIC_CASES runs them end to end).
    plan = plan_slices((w, h), msn, 448, 14)
    overview, refine = resize_for_plan(image, plan)
    rows = crop_slices(refine, plan)
    _check_pieces(case, overview, rows, plan.grid)
    _check_chunks(case, pack_slices(overview, refine, plan, ProcessorConfig(max_slice_nums=msn), (w, h)))


def _check_pieces(case, source, rows, grid):
    assert grid == case["grid"]
    assert [len(r) for r in rows] == case["rows"]
    pieces = [source] + [piece for row in rows for piece in row]  # overview, then row-major
    assert [list(p.size) for p in pieces] == case["piece_sizes"]
    assert [_sha(p.tobytes()) for p in pieces] == case["piece_sha"], "pixels differ from the reference"


def _check_chunks(case, sliced):
    assert sliced.grid == case["grid"] and sliced.n_chunks == len(case["piece_sha"])
    assert [list(c.shape) for c in sliced.chunks] == case["chunk_shape"]
    assert all(c.dtype == np.float32 for c in sliced.chunks)
    assert [_sha(np.ascontiguousarray(c).tobytes()) for c in sliced.chunks] == case["chunk_sha"]
    assert sliced.tgt_sizes.dtype == np.int32 and sliced.tgt_sizes.tolist() == case["tgt_sizes"]


PUBLIC_CASES = [c for c in CASES if c["size"][0] * c["size"][1] <= 3_000_000][::6]


@pytest.mark.parametrize("case", PUBLIC_CASES, ids=lambda c: f"{c['size'][0]}x{c['size'][1]}-m{c['max_slice_nums']}")
def test_public_slice_image_and_preprocess_slices_equal_the_reference(case):
    image = synthetic_image(*case["size"], case["seed"])
    _check_pieces(case, *slice_image(image, case["max_slice_nums"], 448, 14))
    _check_chunks(case, preprocess_slices(image, ProcessorConfig(max_slice_nums=case["max_slice_nums"])))


def test_never_split_forces_one_upscaled_overview():
    image = synthetic_image(1920, 1080, 1)
    source, rows, grid = slice_image(image, 9, never_split=True)
    assert grid is None and rows == []
    assert source.size == find_best_resize((1920, 1080), 448, 14, allow_upscale=True)


def test_reshape_by_patch_matches_the_definition():
    rng = np.random.default_rng(0)
    image = rng.standard_normal((3, 28, 42)).astype(np.float32)  # 2x3 patches of 14
    packed = reshape_by_patch(image, 14)
    assert packed.shape == (3, 14, 6 * 14)
    for i in range(2):
        for j in range(3):
            k = i * 3 + j
            np.testing.assert_array_equal(packed[:, :, k * 14 : (k + 1) * 14], image[:, i * 14 : (i + 1) * 14, j * 14 : (j + 1) * 14])


def test_batching_pads_and_masks():
    sliced = preprocess_slices(synthetic_image(640, 480, 2), ProcessorConfig())
    pixel_values, mask = sliced.batched()
    lengths = [c.shape[-1] for c in sliced.chunks]
    assert pixel_values.shape == (sliced.n_chunks, 3, 14, max(lengths)) and pixel_values.dtype == np.float32
    assert mask.shape == (sliced.n_chunks, max(lengths) // 14) and mask.dtype == bool
    for index, (chunk, length) in enumerate(zip(sliced.chunks, lengths)):
        np.testing.assert_array_equal(pixel_values[index, :, :, :length], chunk)
        assert not pixel_values[index, :, :, length:].any()
        assert mask[index].sum() == length // 14 == int(np.prod(sliced.tgt_sizes[index]))
    empty_pv, empty_mask = batch_chunks([], 14)
    assert empty_pv.shape == (0, 3, 14, 0) and empty_mask.shape == (0, 0)


# Live cross-check: transformers 5.23's native MiniCPM-V 4.6 image processor (Pillow backend) runs
# the same slicing family with sizes aligned to 56 ("16x") or 28 ("4x") and grids as [rows, cols].
# With ``resize_align`` set, our pipeline must give its packed pixel values exactly.
LIVE_CASES = [c for c in CASES if c["size"][0] * c["size"][1] <= 3_000_000][::12]


@pytest.mark.parametrize("mode, align", [("16x", 56), ("4x", 28)])
def test_equals_transformers_minicpmv4_6_processor(mode, align):
    module = pytest.importorskip("transformers.models.minicpmv4_6.image_processing_pil_minicpmv4_6")
    reference = module.MiniCPMV4_6ImageProcessorPil(downsample_mode=mode)
    assert len(LIVE_CASES) >= 15
    for case in LIVE_CASES:
        image = synthetic_image(*case["size"], case["seed"])
        msn = case["max_slice_nums"]
        expected = reference(image, max_slice_nums=msn, return_tensors="np")
        ours = preprocess_slices(image, ProcessorConfig(max_slice_nums=msn, resize_align=align))
        rows_cols = expected["grids"][0]
        assert (ours.grid is None and rows_cols == [0, 0]) or ours.grid == rows_cols[::-1], case["size"]
        np.testing.assert_array_equal(ours.tgt_sizes, expected["target_sizes"])
        np.testing.assert_array_equal(np.concatenate(ours.chunks, axis=-1)[None], expected["pixel_values"])


def test_same_size_groups_cover_every_chunk_once():
    sliced = preprocess_slices(synthetic_image(1920, 1080, 4), ProcessorConfig())
    groups = sliced.same_size_groups()
    assert sorted(i for indices, _ in groups for i in indices) == list(range(sliced.n_chunks))
    for indices, stacked in groups:
        assert stacked.shape == (len(indices), *sliced.chunks[indices[0]].shape)
        for row, index in enumerate(indices):
            np.testing.assert_array_equal(stacked[row], sliced.chunks[index])
    assert [indices for indices, _ in groups] == [[0], list(range(1, sliced.n_chunks))]


def test_non_rgb_input_is_converted_like_load_image():
    rgba = Image.fromarray(np.full((600, 900, 4), 200, dtype=np.uint8), "RGBA")
    from edgevlm.processing.images import to_rgb

    ours = preprocess_slices(rgba, ProcessorConfig())
    expected = preprocess_slices(to_rgb(rgba), ProcessorConfig())
    assert all(np.array_equal(a, b) for a, b in zip(ours.chunks, expected.chunks))
