"""SmolVLM / Idefics3 vision part: ONNX (onnxruntime) features vs transformers' own image features.

Tiles come from our tiler (equal to transformers' processor, see test_idefics3_processing.py); the
reference is ``model.get_image_features`` of the tiny checkpoint loaded by transformers. All tiles of
an image go through the ONNX graph as one batch.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgevlm.families.idefics3 import layout as family
from edgevlm.families.idefics3.reference import load_reference
from edgevlm.families.idefics3.vision import Idefics3Vision
from edgevlm.processing.square_tiles import preprocess_square_tiles
from tiles_reference import synthetic_image

ort = pytest.importorskip("onnxruntime")
SIZES = [(150, 100), (1, 10000), (64, 64), (1000, 700)]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-tile cosine of [n, tokens, hidden] arrays."""
    a, b = a.reshape(a.shape[0], -1).astype(np.float64), b.reshape(b.shape[0], -1).astype(np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module", params=["smolvlm", "idefics3"])
def exported(request, tiny, tmp_path_factory):
    from edgevlm.export.onnx_common import export_module

    ckpt = tiny(request.param)
    ref = load_reference(ckpt)
    module = Idefics3Vision(ref.hf).eval()
    tile = family.tiling(ckpt)["tile"]
    path = tmp_path_factory.mktemp(request.param) / "vision.onnx"
    export_module(module, (torch.zeros(2, 3, tile, tile),), path, ["pixel_values"], ["image_features"],
                  {"pixel_values": {0: "tiles"}, "image_features": {0: "tiles"}})
    return ckpt, ref, module, ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_full_tile_positions_are_the_references(exported):
    """The bucketised position ids of a full tile are 0..P-1: our embedding equals transformers'."""
    _, ref, module, _ = exported
    embeddings = ref.hf.model.vision_model.embeddings
    side = embeddings.num_patches_per_side
    pixels = torch.randn(2, 3, side * embeddings.patch_size, side * embeddings.patch_size)
    theirs = embeddings(pixels, torch.ones(2, side, side, dtype=torch.bool))
    ours = module.patch_embedding(pixels).flatten(2).transpose(1, 2) + module.position_embedding(module.position_ids)
    assert torch.equal(theirs, ours)


@pytest.mark.parametrize("size", SIZES)
def test_onnx_features_match_the_reference(exported, size):
    ckpt, ref, module, session = exported
    args = family.tiling(ckpt)
    tiles = preprocess_square_tiles(synthetic_image(*size), args["tile"], args["longest_edge"], args["mean"],
                                    args["std"]).pixel_values  # [n, 3, T, T]
    expected = ref.image_features(torch.from_numpy(tiles)).numpy()  # [n, tokens, hidden]
    with torch.no_grad():
        torch_out = module(torch.from_numpy(tiles)).numpy()
    (onnx_out,) = session.run(None, {"pixel_values": tiles})
    assert onnx_out.shape == expected.shape == (len(tiles), family.tokens_per_tile(ref.hf.config.to_dict()),
                                                ref.text.hidden_size)
    assert np.abs(torch_out - expected).max() < 1e-5
    assert cosines(onnx_out, expected).min() >= 0.99999
