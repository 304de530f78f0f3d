"""The LLaVA vision part as ONNX (onnxruntime) + numpy packing vs transformers' own image features.

Our side runs the way a bundle will: our preprocessing (numpy + Pillow) -> the exported graph in
onnxruntime (tiles batched) -> ``pack_anyres_features`` with the checkpoint's ``image_newline``
read without torch. transformers' side: its processor and ``get_image_features``.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from edgevlm.families.llava import reference  # noqa: E402
from edgevlm.families.llava.spec import llava_spec  # noqa: E402
from edgevlm.families.llava.tiny import NAMES  # noqa: E402
from edgevlm.families.llava.vision import LlavaVision, export_vision_onnx  # noqa: E402
from edgevlm.processing.anyres_features import pack_anyres_features  # noqa: E402
from edgevlm.processing.anyres_image import preprocess_anyres  # noqa: E402
from edgevlm.processing.square import preprocess_square  # noqa: E402
from llava_cases import case_image  # noqa: E402

# wide, tall, tiny, square-ish, larger than every pinpoint (OneVision pools these), 4.3:1
SIZES = [(130, 90), (40, 300), (20, 20), (500, 480), (1000, 900), (431, 100)]
COSINE = 0.99999


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def parts(tiny, tmp_path_factory):
    """name -> (checkpoint, transformers model, processor, onnxruntime session, newline)."""
    from safetensors.numpy import load_file

    made = {}

    def get(name):
        if name not in made:
            ckpt = tiny(name)
            model = reference.load_model(ckpt)
            path = export_vision_onnx(model, tmp_path_factory.mktemp("onnx") / "vision.onnx")
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            newline = load_file(str(ckpt / "model.safetensors")).get("image_newline")  # torch-free, as a runtime would
            made[name] = (ckpt, model, reference.load_processor(ckpt), session, newline)
        return made[name]

    return get


def _processor_inputs(processor, images):
    conversation = [{"role": "user", "content": [{"type": "image"}] * len(images) + [{"type": "text", "text": "Hi"}]}]
    text = processor.apply_chat_template(conversation, add_generation_prompt=True)
    return processor(images=[images], text=text, return_tensors="pt")


def _our_features(name, ckpt, session, newline, images):
    """Per image: (tile features from onnxruntime [n_chunks, T, D], packed features [n_tokens, D])."""
    spec = llava_spec(ckpt)
    out = []
    for image in images:
        if spec.fixed_tokens:
            pixels = preprocess_square(image, spec.images)[None]  # [1, 3, S, S]
            tiles = session.run(None, {"pixel_values": pixels})[0]
            out.append((tiles, tiles[0]))
            continue
        prepared = preprocess_anyres(image, spec.images, alone=len(images) == 1)
        tiles = session.run(None, {"pixel_values": prepared.pixel_values})[0]  # tiles batched: [n_chunks, T, D]
        out.append((tiles, pack_anyres_features(tiles, prepared.plan, newline)))
    return out


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_onnx_features_equal_transformers_per_tile_and_packed(parts, name, size):
    ckpt, model, processor, session, newline = parts(name)
    image = case_image(*size)
    inputs = _processor_inputs(processor, [image])
    ref = reference.reference_image_features(model, inputs)
    ((tiles, packed),) = _our_features(name, ckpt, session, newline, [image])
    assert tiles.shape == tuple(ref.tiles.shape)
    worst_tile = min(_cosine(ours, theirs) for ours, theirs in zip(tiles, ref.tiles.numpy()))
    assert worst_tile >= COSINE
    assert packed.shape == tuple(ref.packed[0].shape)  # unpadded rows + newline column (+ pooling) line up
    assert _cosine(packed, ref.packed[0].numpy()) >= COSINE
    assert int((inputs["input_ids"] == model.config.image_token_id).sum()) == packed.shape[0]


@pytest.mark.parametrize("name", NAMES)
def test_two_images_in_one_prompt(parts, name):
    """OneVision then skips tiling (mean-padded square + one newline each); NeXT tiles each image."""
    ckpt, model, processor, session, newline = parts(name)
    images = [case_image(130, 90), case_image(300, 40)]
    ref = reference.reference_image_features(model, _processor_inputs(processor, images))
    ours = _our_features(name, ckpt, session, newline, images)
    assert len(ref.packed) == 2
    for (_, packed), theirs in zip(ours, ref.packed):
        assert packed.shape == tuple(theirs.shape)
        assert _cosine(packed, theirs.numpy()) >= COSINE


@pytest.mark.parametrize("name", NAMES)
def test_vision_module_is_transformers_get_image_features(parts, name):
    """The exported module (tower to the feature layer, CLS drop, projector) reproduces transformers exactly."""
    _, model, processor, _, _ = parts(name)
    inputs = _processor_inputs(processor, [case_image(431, 100)])
    ref = reference.reference_image_features(model, inputs)
    pixels = inputs["pixel_values"].reshape(-1, *inputs["pixel_values"].shape[-3:])[: ref.tiles.shape[0]]
    with torch.no_grad():
        ours = LlavaVision(model)(pixels)
    assert torch.equal(ours, ref.tiles)
    tower_layers = len(model.model.vision_tower.encoder.layers)
    assert len(LlavaVision(model).layers) == (tower_layers - 1 if name != "llava-onevision" else tower_layers)
