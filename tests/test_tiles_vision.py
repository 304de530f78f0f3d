"""SmolVLM / Idefics3 / InternVL vision part: the ONNX part (export/onnx/vision.py on the family's vision
graph) vs transformers' own ``get_image_features``, per tile, with all tiles of an image as one batch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edgevlm.export.onnx.vision import export_vision
from edgevlm.families import family_for, load_reference
from edgevlm.runtime.images import prepare_image
from tiles_reference import synthetic_image

ort = pytest.importorskip("onnxruntime")
NAMES = ["smolvlm", "idefics3", "internvl"]
SIZES = [(150, 100), (1, 10000), (64, 64), (1000, 700)]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-tile cosine of [n, tokens, hidden] arrays."""
    a, b = a.reshape(a.shape[0], -1).astype(np.float64), b.reshape(b.shape[0], -1).astype(np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module", params=NAMES)
def exported(request, tiny, tmp_path_factory):
    """(name, reference, bundle spec, onnxruntime session of the exported vision part)."""
    ckpt = tiny(request.param)
    ref = load_reference(ckpt)
    spec = family_for(ckpt).bundle_spec(ckpt, json.loads((ckpt / "config.json").read_text()))
    path = tmp_path_factory.mktemp(request.param) / "vision.onnx"
    export_vision(ref, path)
    return request.param, ref, spec, ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("size", SIZES)
def test_onnx_features_match_the_reference_per_tile(exported, size):
    name, ref, spec, session = exported
    tiles = prepare_image(synthetic_image(*size), spec.processor).inputs["pixel_values"]  # [n, 3, T, T]
    expected = ref.image_features(torch.from_numpy(tiles)).numpy()  # [n, tokens, hidden]
    (got,) = session.run(None, {"pixel_values": tiles})
    assert got.shape == expected.shape == (len(tiles), ref.vision_graph().tokens_per_chunk(), ref.text.hidden_size)
    worst = float(cosines(got, expected).min())
    print(f"{name} {size}: {len(tiles)} tiles, min cosine {worst:.8f}, max abs {np.abs(got - expected).max():.2e}")
    assert worst >= 0.99999


@pytest.mark.parametrize("side", [6, 8, 26, 27, 32])
def test_full_tile_positions_are_transformers_at_every_published_side(side):
    """Our vision forward numbers a full tile's patches 0..P-1; transformers' float32 bucketing gives the same
    at the tiny sides (6, 8) and at every published one (Idefics3-8B 26, SmolVLM-Instruct 27, SmolVLM 32)."""
    from transformers.models.idefics3.configuration_idefics3 import Idefics3VisionConfig
    from transformers.models.idefics3.modeling_idefics3 import Idefics3VisionEmbeddings

    emb = Idefics3VisionEmbeddings(Idefics3VisionConfig(hidden_size=8, image_size=side * 2, patch_size=2)).eval()
    pixels = torch.randn(2, 3, side * 2, side * 2)
    with torch.no_grad():
        theirs = emb(pixels, torch.ones(2, side, side, dtype=torch.bool))
        ours = emb.patch_embedding(pixels).flatten(2).transpose(1, 2) + emb.position_embedding(
            torch.arange(side * side)[None])
    assert torch.equal(theirs, ours)
