"""MiniCPM-V 4.6 / 4.7 vision: our preprocessing + ONNX vision part (through the runtime's encoder loop)
against transformers' own processor + ``get_image_features``, in both downsample modes; the slicing
plan against transformers' image processor on 300 sizes; the derived tables against transformers' own.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from edgevlm.export.onnx.vision import export_vision  # noqa: E402
from edgevlm.families import family_for, load_reference  # noqa: E402
from edgevlm.families.minicpmv4_6.reference import load_processor, processor_outputs  # noqa: E402
from edgevlm.families.tiny import make_tiny  # noqa: E402
from edgevlm.manifest import VisionInfo  # noqa: E402
from edgevlm.processing.config import ProcessorConfig  # noqa: E402
from edgevlm.processing.slice_merge import chunk_grids, plan_merged  # noqa: E402
from edgevlm.processing.vision_inputs import bucketed_position_ids, window_order, window_orders  # noqa: E402
from edgevlm.runtime.backends.ort_vision import encode_chunks  # noqa: E402
from edgevlm.runtime.images import pack_features, prepare_image  # noqa: E402
from tests.test_processing_slicing import synthetic_image  # noqa: E402

SIZES = [(700, 500), (300, 200), (1200, 400), (448, 448), (900, 1600)]  # (width, height): 1 to 9 slices


@pytest.fixture(scope="module")
def checkpoint(tiny, tmp_path_factory):
    """(version, mode) -> (reference, processor, processor config, onnx session, part)."""
    import onnxruntime as ort

    made = {}

    def get(version, mode):
        if (version, mode) not in made:
            path = tiny(f"minicpmv-{version}") if mode == "16x" else make_tiny(
                f"minicpmv-{version}", tmp_path_factory.mktemp(f"minicpmv{version}-{mode}"), downsample_mode=mode)
            ref = load_reference(path)
            spec = family_for(path).bundle_spec(path, ref.hf.config.to_dict())
            onnx_path = tmp_path_factory.mktemp("vision") / "vision.onnx"
            part = export_vision(ref, onnx_path)
            session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
            made[version, mode] = (ref, load_processor(path), spec.processor, session, part)
        return made[version, mode]

    return get


def _cosine(a, b):
    return float((a * b).sum() / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.mark.parametrize("version, mode, sizes", [
    ("4.6", "4x", SIZES[:1]), pytest.param("4.7", "16x", SIZES[2:3], marks=pytest.mark.slow),
    pytest.param("4.6", "16x", SIZES, marks=pytest.mark.slow), pytest.param("4.6", "4x", SIZES, marks=pytest.mark.slow)])
def test_onnx_vision_matches_transformers_per_chunk(checkpoint, version, mode, sizes):
    """transformers' get_image_features takes ~8 s per image here: the default tier checks "4x" on one image
    ("16x" vision of 4.6 and 4.7 is checked by every export's parity check: tests/test_minicpmv46_onnx.py)."""
    ref, processor, cfg, session, part = checkpoint(version, mode)
    graph = ref.vision_graph()
    vision = VisionInfo(kind="patch_sequence", tokens_per_chunk=graph.tokens_per_chunk(), hidden_size=64,
                        max_batch=16, patch_size=14, params=graph.record)
    assert set(part.inputs) == {"pixel_values", "patch_attention_mask", *graph.derived}
    for seed, size in enumerate(sizes):
        image = synthetic_image(*size, seed)
        inputs = processor_outputs(processor, "Describe.", [image])
        expected = ref.hf.model.get_image_features(inputs["pixel_values"], inputs["target_sizes"]).pooler_output
        prepared = prepare_image(image, cfg)
        np.testing.assert_array_equal(prepared.inputs["tgt_sizes"], inputs["target_sizes"].numpy())
        features = encode_chunks(lambda feeds: session.run(None, feeds)[0], prepared.inputs, vision,
                                 part.binding["derived_inputs"])
        rows = pack_features(features, cfg, prepared.plan)  # the runtime's rows in prompt order
        assert rows.shape[0] == prepared.plan.n_tokens == sum(e.shape[0] for e in expected)
        start = 0
        for b, e in enumerate(expected):
            e = e.detach().numpy()
            a = rows[start:start + len(e)]
            start += len(e)
            print(f"{version} {mode} {size} chunk {b} grid {tuple(prepared.inputs['tgt_sizes'][b])}: {len(e)} rows, "
                  f"cosine {_cosine(a, e):.8f}, max abs diff {np.abs(a - e).max():.2e}")
            assert _cosine(a, e) >= 0.99999


@pytest.mark.parametrize("mode", ["16x", "4x"])
def test_our_slicing_gives_the_processor_pixels(checkpoint, mode):
    """The runtime's numpy slicing (resize_align) packs exactly what transformers' 4.6 processor packs."""
    _, processor, cfg, _, _ = checkpoint("4.6", mode)
    for seed, size in enumerate(SIZES):
        image = synthetic_image(*size, seed)
        expected = processor_outputs(processor, "x", [image])
        prepared = prepare_image(image, cfg)
        tgt = prepared.inputs["tgt_sizes"]
        packed = np.concatenate([prepared.inputs["pixel_values"][i, ..., : h * w * 14] for i, (h, w) in enumerate(tgt)],
                                axis=-1)[None]
        np.testing.assert_array_equal(tgt, expected["target_sizes"].numpy())
        np.testing.assert_array_equal(packed, expected["pixel_values"].numpy())


def test_plan_equals_the_image_processor_on_300_sizes():
    """Grid, chunk sizes and token counts from the image size alone equal transformers' image processor's
    own sizing functions (no pixels: its get_sliced_grid / find_best_resize / get_refine_size)."""
    from transformers.models.minicpmv4_6 import MiniCPMV4_6ImageProcessorPil

    hf = MiniCPMV4_6ImageProcessorPil()
    rng = np.random.default_rng(0)
    sizes = [(int(w), int(h)) for w, h in rng.integers(20, 4000, (290, 2))] + [
        (448, 448), (896, 448), (448, 896), (1344, 1344), (14, 14), (56, 3000), (3000, 56), (1000, 1000),
        (449, 449), (2000, 1000)]
    for mode, ratio in (("16x", 16), ("4x", 4)):
        cfg = ProcessorConfig(kind="slice_merge", resize_align=14 * (4 if mode == "16x" else 2),
                              options={"patches_per_token": ratio})
        for w, h in sizes:
            grid = hf.get_sliced_grid((h, w), 9, 448)
            th, tw = hf.find_best_resize((h, w), 448, 14, mode, allow_upscale=grid is None)
            expected = [(th // 14, tw // 14)]
            if grid is not None:
                rh, rw = hf.get_refine_size((h, w), grid, 448, 14, mode, allow_upscale=True)
                expected += [(rh // grid[0] // 14, rw // grid[1] // 14)] * (grid[0] * grid[1])
            ours_grid, ours = chunk_grids((w, h), cfg)
            assert ours == expected, (mode, w, h)
            assert (ours_grid is None) == (grid is None) and (grid is None or ours_grid == [grid[1], grid[0]])
            plan = plan_merged((w, h), cfg)
            assert [plan.overview_tokens, *plan.slice_tokens] == [a * b // ratio for a, b in expected]


def test_derived_tables_equal_transformers_tables():
    """Window orders and navit positions computed with numpy equal transformers' own vision_utils functions."""
    from transformers.vision_utils import get_vision_nearest_position_ids, get_vision_window_index

    for h, w in [(4, 4), (8, 12), (32, 20), (28, 36), (2, 6)]:
        grid = torch.tensor([[1, h, w]])
        expected, cu = get_vision_window_index(grid, spatial_merge_size=1, window_size=2, patch_size=1)
        np.testing.assert_array_equal(window_order(h, w), expected.numpy())
        assert (np.diff(cu.numpy()) == 4).all()
    for h in range(1, 71):
        for w in (1, 7, 36):
            ours = bucketed_position_ids(np.array([[h, w]]), h * w, 70)[0]
            theirs = get_vision_nearest_position_ids(torch.tensor([[h, w]]), 70).numpy()
            np.testing.assert_array_equal(ours, theirs)
    # padded rows keep their own positions, so padding never mixes into a window
    table = window_orders(np.array([[4, 4], [2, 4]]), 16)
    np.testing.assert_array_equal(table[1, 8:], np.arange(8, 16))
    after = window_orders(np.array([[8, 4]]), 16, shrink=2)  # the 4 x 2 grid left by one merge
    np.testing.assert_array_equal(after[0, :8], window_order(4, 2))
    with pytest.raises(ValueError, match="both sides must be even"):
        window_order(3, 4)
