"""MiniCPM-V 4.6 / 4.7 vision part: ONNX (onnxruntime) features against transformers' own get_image_features.

The slices come from transformers' own image processor; the graph's per-slice tables (navit
positions, 2x2 window orders) are computed with numpy as the runtime will, and checked against
transformers' own table functions. Every case prints the figures it asserts on.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from edgevlm.families.minicpmv4_6.reference import load_processor, load_reference, processor_outputs  # noqa: E402
from edgevlm.families.minicpmv4_6.tiny import make_tiny_minicpmv4_6  # noqa: E402
from edgevlm.families.minicpmv4_6.vision import export_vision, graph_feeds, unpack_slices  # noqa: E402
from edgevlm.processing.config import ProcessorConfig  # noqa: E402
from edgevlm.processing.preprocess import preprocess_slices  # noqa: E402
from edgevlm.runtime.vision_inputs import navit_position_ids  # noqa: E402
from edgevlm.runtime.vision_windows import window_index, window_order  # noqa: E402
from tests.test_processing_slicing import synthetic_image  # noqa: E402

SIZES = [(700, 500), (300, 200), (1200, 400), (448, 448), (900, 1600)]  # (width, height): 1 to 9 slices
RATIO = {"16x": 16, "4x": 4}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """version -> (reference, processor); each tiny checkpoint written once."""
    made = {}

    def get(version):
        if version not in made:
            path = make_tiny_minicpmv4_6(version, tmp_path_factory.mktemp(f"minicpmv{version}"))
            made[version] = (load_reference(path), load_processor(path))
        return made[version]

    return get


@pytest.fixture(scope="module")
def vision_session(checkpoint, tmp_path_factory):
    sessions = {}

    def get(version, mode):
        if (version, mode) not in sessions:
            ref, _ = checkpoint(version)
            path = tmp_path_factory.mktemp("vision") / f"vision_{mode}.onnx"
            part = export_vision(ref.hf, path, mode)
            sessions[version, mode] = (ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]), part)
        return sessions[version, mode]

    return get


def onnx_features(session, part, ref, pixel_values, tgt_sizes, mode):
    """Per-slice features from the ONNX graph, batched and padded as the runtime would."""
    per_side = ref.hf.config.vision_config.image_size // ref.hf.config.vision_config.patch_size
    feeds = graph_feeds(unpack_slices(pixel_values, tgt_sizes), tgt_sizes, mode, per_side)
    assert set(feeds) == set(part.inputs), (sorted(feeds), sorted(part.inputs))
    out = session.run(None, feeds)[0]
    return [out[b, : int(np.prod(tgt_sizes[b])) // RATIO[mode]] for b in range(len(tgt_sizes))]


@pytest.mark.parametrize("version", ["4.6", "4.7"])
@pytest.mark.parametrize("mode", ["16x", "4x"])
def test_onnx_vision_matches_transformers_per_slice(checkpoint, vision_session, version, mode):
    ref, processor = checkpoint(version)
    session, part = vision_session(version, mode)
    assert part.extra["patches_per_token"] == RATIO[mode] and part.extra["downsample_mode"] == mode
    for seed, size in enumerate(SIZES):
        inputs = processor_outputs(processor, "Describe.", [synthetic_image(*size, seed)], downsample_mode=mode)
        tgt = inputs["target_sizes"].numpy()
        expected = ref.image_features(inputs["pixel_values"], inputs["target_sizes"], mode)
        ours = onnx_features(session, part, ref, inputs["pixel_values"].numpy(), tgt, mode)
        assert len(ours) == len(expected) == len(tgt)
        for b, (a, e) in enumerate(zip(ours, expected)):
            e = e.numpy()
            cos = float((a * e).sum() / np.linalg.norm(a) / np.linalg.norm(e))
            grid = tuple(int(x) for x in tgt[b])
            print(f"{version} {mode} {size} slice {b} grid {grid}: {a.shape[0]} tokens, cosine {cos:.8f}, "
                  f"max abs diff {np.abs(a - e).max():.2e}")
            assert a.shape == e.shape
            assert cos >= 0.99999


@pytest.mark.parametrize("mode, align", [("16x", 56), ("4x", 28)])
def test_our_slicing_gives_the_processor_pixels(checkpoint, mode, align):
    """The runtime's numpy slicing (resize_align) packs exactly what transformers' 4.6 processor packs."""
    _, processor = checkpoint("4.6")
    for seed, size in enumerate(SIZES):
        image = synthetic_image(*size, seed)
        expected = processor_outputs(processor, "x", [image], downsample_mode=mode)
        ours = preprocess_slices(image, ProcessorConfig(resize_align=align))
        np.testing.assert_array_equal(ours.tgt_sizes, expected["target_sizes"].numpy())
        np.testing.assert_array_equal(np.concatenate(ours.chunks, axis=-1)[None], expected["pixel_values"].numpy())


def test_numpy_tables_equal_transformers_tables():
    """Window orders and navit positions computed with numpy equal transformers' own vision_utils functions."""
    from transformers.vision_utils import get_vision_nearest_position_ids, get_vision_window_index

    for h, w in [(4, 4), (8, 12), (32, 20), (28, 36), (2, 6)]:
        grid = torch.tensor([[1, h, w]])
        expected, cu = get_vision_window_index(grid, spatial_merge_size=1, window_size=2, patch_size=1)
        np.testing.assert_array_equal(window_order(h, w), expected.numpy())
        assert (np.diff(cu.numpy()) == 4).all()
    for h in range(1, 71):
        for w in (1, 7, 36):
            ours = navit_position_ids(np.array([[h, w]]), h * w, 70)[0]
            theirs = get_vision_nearest_position_ids(torch.tensor([[h, w]]), 70).numpy()
            np.testing.assert_array_equal(ours, theirs)
    # padded rows keep their own positions, so padding never mixes into a window
    table = window_index(np.array([[4, 4], [2, 4]]), 16)
    np.testing.assert_array_equal(table[1, 8:], np.arange(8, 16))
    with pytest.raises(ValueError, match="both sides must be even"):
        window_order(3, 4)
