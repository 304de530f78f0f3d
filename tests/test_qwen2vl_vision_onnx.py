"""The Qwen2-VL / Qwen2.5-VL vision tower as ONNX (onnxruntime) against transformers' image features.

The numpy tables (edgevlm.processing.packed_vit) are checked against transformers' own
``vision_utils`` helpers and rotary module; the exported ``PackedVision`` graph, fed those tables,
against ``get_image_features`` of transformers' model: per image at several sizes (none of them the
traced size), and for several images in one call (same grid and mixed grids).
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

from edgevlm.families.qwen2_vl.reference import load_reference  # noqa: E402
from edgevlm.families.qwen2_vl.vision import export_vision_onnx, packed_vit_spec  # noqa: E402
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

NAMES = ["qwen2-vl", "qwen2.5-vl"]
BUDGET = NativeResolutionConfig(max_pixels=28 * 28 * 256)
# (w, h): tiny (one token), windows partial on both sides, exact windows (8x8 patches), tall, wide, large
SIZES = [(20, 20), (300, 200), (224, 224), (123, 457), (900, 140), (640, 480)]
GRIDS = [(1, 4, 4), (1, 8, 8), (1, 14, 22), (1, 32, 8), (1, 18, 20), (1, 10, 30)]


@pytest.fixture(scope="module")
def exported(tiny, tmp_path_factory):
    out = {}
    for name in NAMES:
        ref = load_reference(tiny(name))
        path = tmp_path_factory.mktemp("vision") / f"{name}.onnx"
        names = export_vision_onnx(ref, path)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        out[name] = (ref, session, names)
    return out


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Smallest per-row cosine similarity of two [n, D] arrays."""
    return float(((a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)).min())


def _run(ref, session, names, pixel_values: np.ndarray, grids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(onnx features, transformers features) for these images."""
    tables = packed_vit_inputs(grids, packed_vit_spec(ref.hf.model.visual.config))
    got = session.run(["features"], {"pixel_values": pixel_values, **{n: tables[n] for n in names[1:]}})[0]
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
    if spec.window_size:
        index, cu_windows = get_vision_window_index(torch.from_numpy(grids), 2, spec.window_size, 14)
        window_index, window_segments = window_order(grids, 2, spec.window_size, 14)
        assert np.array_equal(window_index, index.numpy())
        assert np.array_equal(np.flatnonzero(np.diff(window_segments)) + 1, cu_windows.numpy()[1:-1])
        assert np.array_equal(tables["reverse_index"], torch.argsort(index).numpy())
        cos, sin = (visual.permute_input_for_window_attn(t, index, t.shape[0]) for t in (cos, sin))
    assert np.abs(tables["rotary_cos"] - cos.numpy()).max() <= 1e-6
    assert np.abs(tables["rotary_sin"] - sin.numpy()).max() <= 1e-6


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_onnx_features_per_image(exported, name, size):
    ref, session, names = exported[name]
    image = preprocess_native_resolution(synthetic_image(*size), BUDGET)
    got, want = _run(ref, session, names, image.pixel_values, image.grid_thw[None])
    assert got.shape == want.shape == (image.plan.n_tokens, ref.text.hidden_size)
    assert _cosine(got, want) >= 0.99999


@pytest.mark.parametrize("name", NAMES)
def test_onnx_features_batched_by_grid(exported, name):
    """Several images in one call: two of one grid, then mixed grids; rows equal each image alone."""
    ref, session, names = exported[name]
    same = [preprocess_native_resolution(synthetic_image(300, 200, seed), BUDGET) for seed in (0, 1)]
    mixed = same[:1] + [preprocess_native_resolution(synthetic_image(*size), BUDGET) for size in SIZES[3:5]]
    for images in (same, mixed):
        pixel_values, grids = concat_images(images)
        got, want = _run(ref, session, names, pixel_values, grids)
        assert _cosine(got, want) >= 0.99999
        alone = np.concatenate([_run(ref, session, names, im.pixel_values, im.grid_thw[None])[0] for im in images])
        assert np.abs(got - alone).max() <= 1e-4


def test_graph_inputs_are_the_tables(exported):
    assert [i.name for i in exported["qwen2-vl"][1].get_inputs()] == [
        "pixel_values", "rotary_cos", "rotary_sin", "attention_segments"]
    windowed = [i.name for i in exported["qwen2.5-vl"][1].get_inputs()]
    assert windowed[-3:] == ["window_segments", "window_index", "reverse_index"]
