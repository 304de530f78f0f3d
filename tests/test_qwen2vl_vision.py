"""The Qwen2-VL / Qwen2.5-VL vision part (ONNX, through the runtime's feeding code) against transformers.

The numpy tables (edgevlm/processing/packed_vit.py) are checked against transformers' own
``vision_utils`` helpers and rotary module; the exported ``PackedVision`` graph, fed by
``runtime/backends/packed_patches.py`` as the backends feed it, against ``get_image_features`` of
transformers' model: per image at several sizes (none of them the traced one), several images
grouped by grid, and padded to fixed patch counts as a Core ML part is fed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from qwen2vl_hf import synthetic_image  # noqa: E402

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("transformers")

from edgevlm.export import vision_info  # noqa: E402
from edgevlm.export.onnx.vision import export_vision  # noqa: E402
from edgevlm.families.qwen2_vl.reference import load_reference  # noqa: E402
from edgevlm.families.qwen2_vl.vision import packed_vit_spec  # noqa: E402
from edgevlm.processing.native_resolution import (  # noqa: E402
    NativeResolutionConfig,
    concat_images,
    preprocess_native_resolution,
)
from edgevlm.processing.packed_vit import (  # noqa: E402
    frame_segments,
    packed_vit_inputs,
    vision_position_ids,
    window_order,
)
from edgevlm.runtime.backends.packed_patches import encode_packed  # noqa: E402

NAMES = ["qwen2-vl", "qwen2.5-vl"]
BUDGET = NativeResolutionConfig(max_pixels=28 * 28 * 256)
# (w, h): one token, windows partial on both sides, exact windows (8x8 patches), tall, wide, large
SIZES = [(28, 28), (300, 200), (224, 224), (123, 457), (900, 140), (640, 480)]
QUICK_SIZES = {(300, 200), (123, 457)}  # partial windows on both sides; tall (the rest: slow tier)
SIZE_PARAMS = [pytest.param(s, id=f"{s[0]}x{s[1]}", marks=() if s in QUICK_SIZES else pytest.mark.slow) for s in SIZES]
WINDOWED_FIRST = ["qwen2.5-vl", pytest.param("qwen2-vl", marks=pytest.mark.slow)]
GRIDS = [(1, 2, 2), (1, 8, 8), (1, 14, 22), (1, 32, 8), (1, 18, 20), (1, 10, 30)]


@pytest.fixture(scope="module")
def exported(tiny, tmp_path_factory):
    out = {}
    for name in NAMES:
        ref = load_reference(tiny(name))
        path = tmp_path_factory.mktemp("vision") / f"{name}.onnx"
        part = export_vision(ref, path)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        out[name] = (ref, session, part, vision_info(ref, 16))
    return out


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Smallest per-row cosine similarity of two [n, D] arrays."""
    a, b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    return float(((a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)).min())


def _run(exported_part, pixel_values: np.ndarray, grids: np.ndarray, **options) -> tuple[np.ndarray, np.ndarray]:
    """(ONNX features through the runtime's feeding code, transformers' features) for these images."""
    ref, session, part, vision = exported_part
    inputs = {"pixel_values": pixel_values, "image_grid_thw": grids}
    got = encode_packed(lambda feeds: session.run(None, feeds)[0], inputs, vision, part.binding["derived_inputs"],
                        max_batch=options.pop("max_batch", 16), **options)
    with torch.no_grad():
        want = ref.image_features(torch.from_numpy(pixel_values), torch.from_numpy(grids)).numpy()
    return got, want


@pytest.mark.parametrize("name", NAMES)
def test_tables_equal_transformers_helpers(exported, name):
    from transformers.vision_utils import get_vision_cu_seqlens, get_vision_position_ids, get_vision_window_index

    ref = exported[name][0]
    visual = ref.hf.model.visual
    grids = np.array(GRIDS + [(2, 6, 10)], dtype=np.int64)  # a two-frame entry too
    positions = vision_position_ids(grids, 2)
    assert np.array_equal(positions, get_vision_position_ids(torch.from_numpy(grids), 2).numpy())
    cu = get_vision_cu_seqlens(torch.from_numpy(grids)).numpy()
    assert np.array_equal(np.flatnonzero(np.diff(frame_segments(grids))) + 1, cu[1:-1])
    spec = packed_vit_spec(visual.config)
    with torch.no_grad():
        cos, sin = visual.rotary_pos_emb(torch.zeros(1), torch.from_numpy(positions))
    tables = packed_vit_inputs(grids, spec)
    if spec.window_tokens:
        index, cu_windows = get_vision_window_index(torch.from_numpy(grids), 2, visual.config.window_size, 14)
        window_index, window_segments = window_order(grids, 2, spec.window_tokens)
        assert np.array_equal(window_index, index.numpy())
        assert np.array_equal(np.flatnonzero(np.diff(window_segments)) + 1, cu_windows.numpy()[1:-1])
        assert np.array_equal(tables["reverse_index"], torch.argsort(index).numpy())
        cos, sin = (visual.permute_input_for_window_attn(t, index, t.shape[0]) for t in (cos, sin))
    assert np.abs(tables["rotary_cos"] - cos.numpy()).max() <= 1e-6
    assert np.abs(tables["rotary_sin"] - sin.numpy()).max() <= 1e-6


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", SIZE_PARAMS)
def test_onnx_features_per_image(exported, name, size):
    ref = exported[name][0]
    image = preprocess_native_resolution(synthetic_image(*size), BUDGET)
    got, want = _run(exported[name], image.pixel_values, image.grid_thw[None])
    assert got.shape == want.shape == (1, image.plan.n_tokens, ref.text.hidden_size)
    assert _cosine(got, want) >= 0.99999


@pytest.mark.parametrize("name", WINDOWED_FIRST)
def test_images_run_grouped_by_grid(exported, name):
    """Images of one grid run as one batch, of other grids in their own calls; rows come back in image
    order, equal to transformers' and to each image alone."""
    same = [preprocess_native_resolution(synthetic_image(300, 200, seed), BUDGET) for seed in (0, 1)]
    images = same[:1] + [preprocess_native_resolution(synthetic_image(*size), BUDGET) for size in SIZES[3:5]] + same[1:]
    pixel_values, grids = concat_images(images)

    class Counting:  # the session, recording each call's batch shape
        def __init__(self, session):
            self.session, self.calls = session, []

        def run(self, outputs, feeds):
            self.calls.append(feeds["pixel_values"].shape[:2])
            return self.session.run(outputs, feeds)

    counting = Counting(exported[name][1])
    got, want = _run((exported[name][0], counting, *exported[name][2:]), pixel_values, grids)
    n = [int(np.prod(g)) for g in grids.tolist()]
    assert sorted(counting.calls) == sorted([(2, n[0]), (1, n[1]), (1, n[2])])
    assert _cosine(got, want) >= 0.99999
    alone = np.concatenate([_run(exported[name], im.pixel_values, im.grid_thw[None])[0][0] for im in images])
    assert np.abs(got[0] - alone).max() <= 1e-4


@pytest.mark.parametrize("name", WINDOWED_FIRST)
def test_padding_to_fixed_patch_counts_changes_nothing(exported, name):
    """A fixed-shape part (Core ML's enumerated counts) gets each image padded; the padding is masked out."""
    image = preprocess_native_resolution(synthetic_image(123, 457), BUDGET)  # 32 x 8 patches = 256
    exact, want = _run(exported[name], image.pixel_values, image.grid_thw[None])
    padded, _ = _run(exported[name], image.pixel_values, image.grid_thw[None], sizes=[64, 400, 1024])
    assert np.abs(padded - exact).max() <= 1e-4 and _cosine(padded, want) >= 0.99999


def test_graph_inputs_are_the_tables(exported):
    assert [i.name for i in exported["qwen2-vl"][1].get_inputs()] == [
        "pixel_values", "rotary_cos", "rotary_sin", "attention_segments"]
    windowed = [i.name for i in exported["qwen2.5-vl"][1].get_inputs()]
    assert windowed[-3:] == ["window_segments", "window_index", "reverse_index"]
    assert exported["qwen2.5-vl"][2].binding["derived_inputs"]["window_index"] == "packed_window_index"
