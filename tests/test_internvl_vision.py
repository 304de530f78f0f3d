"""InternVL vision part: ONNX (onnxruntime) features vs transformers' own image features.

Tiles come from our tiler (equal to transformers' processor, see test_internvl_processing.py); the
reference is ``model.get_image_features`` of the tiny checkpoint loaded by transformers (the published
"-hf" tensor names, mapped by transformers itself). All tiles of an image go through ONNX as one batch.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgevlm.families.internvl import layout as family
from edgevlm.families.internvl.reference import load_reference
from edgevlm.families.internvl.vision import InternVLVision
from edgevlm.processing.aspect_tiles import preprocess_aspect_tiles
from test_idefics3_vision import cosines
from tiles_reference import synthetic_image

ort = pytest.importorskip("onnxruntime")
SIZES = [(150, 100), (1, 10000), (112, 112), (1000, 800)]


@pytest.fixture(scope="module")
def exported(tiny, tmp_path_factory):
    from edgevlm.export.onnx_common import export_module

    ckpt = tiny("internvl")
    ref = load_reference(ckpt)
    module = InternVLVision(ref.hf).eval()
    tile = family.tiling(ckpt)["tile"]
    path = tmp_path_factory.mktemp("internvl") / "vision.onnx"
    export_module(module, (torch.zeros(2, 3, tile, tile),), path, ["pixel_values"], ["image_features"],
                  {"pixel_values": {0: "tiles"}, "image_features": {0: "tiles"}})
    return ckpt, ref, module, ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_checkpoint_loads_with_the_published_names(exported):
    """The tiny checkpoint is in the published llava layout; transformers maps every tensor."""
    from safetensors import safe_open

    ckpt, ref, _, _ = exported
    with safe_open(str(ckpt / "model.safetensors"), "pt") as f:
        names = set(f.keys())
    assert {"vision_tower.embeddings.cls_token", "multi_modal_projector.layer_norm.weight",
            "language_model.model.embed_tokens.weight"} <= names
    assert not any(n.startswith("model.") for n in names)
    loaded = ref.hf.state_dict()["model.vision_tower.embeddings.cls_token"]
    with safe_open(str(ckpt / "model.safetensors"), "pt") as f:
        assert torch.equal(loaded, f.get_tensor("vision_tower.embeddings.cls_token"))


@pytest.mark.parametrize("size", SIZES)
def test_onnx_features_match_the_reference(exported, size):
    ckpt, ref, module, session = exported
    args = family.tiling(ckpt)
    tiles = preprocess_aspect_tiles(synthetic_image(*size), args["tile"], args["mean"], args["std"],
                                    args["min_tiles"], args["max_tiles"]).pixel_values  # [n, 3, T, T]
    expected = ref.image_features(torch.from_numpy(tiles)).numpy()  # [n, tokens, hidden]
    with torch.no_grad():
        torch_out = module(torch.from_numpy(tiles)).numpy()
    (onnx_out,) = session.run(None, {"pixel_values": tiles})
    assert onnx_out.shape == expected.shape == (len(tiles), family.tokens_per_tile(ref.hf.config.to_dict()),
                                                ref.text.hidden_size)
    assert np.abs(torch_out - expected).max() < 1e-5
    assert cosines(onnx_out, expected).min() >= 0.99999
