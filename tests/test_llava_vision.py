"""The LLaVA vision part as ONNX (onnxruntime) + the runtime's packing vs transformers' own image features.

Our side runs the way a bundle does: the runtime's processor kind (plan from the size, pixels with
numpy + Pillow) -> the exported graph in onnxruntime (tiles batched) -> the kind's ``pack`` with the
``image_newline`` table the exporter writes as a data part. transformers' side: its processor and
``get_image_features`` (per tile through a hook on the projector, and packed).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from edgevlm.export.onnx.vision import export_vision  # noqa: E402
from edgevlm.export.tables import export_tables  # noqa: E402
from edgevlm.families import read_config  # noqa: E402
from edgevlm.families.llava import reference, spec  # noqa: E402
from edgevlm.families.llava.spec import TINY_NAMES  # noqa: E402
from edgevlm.runtime.images import pack_features, plan_image, prepare_image  # noqa: E402
from llava_cases import case_image  # noqa: E402

# wide, tall, tiny, square-ish, larger than every pinpoint (OneVision pools these), 4.3:1; the export check
# covers 640x480 on every bundle, so the default tier keeps two sizes here
SIZES = [(130, 90), (1000, 900)] + [pytest.param(s, marks=pytest.mark.slow)
                                     for s in ((40, 300), (20, 20), (500, 480), (431, 100))]
COSINE = 0.99999


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def parts(tiny, tmp_path_factory):
    """name -> (reference, processor config, transformers processor, onnxruntime session, tables)."""
    made = {}

    def get(name):
        if name not in made:
            ckpt = tiny(name)
            ref = reference.load_reference(ckpt)
            out = tmp_path_factory.mktemp(f"vision-{name}")
            part = export_vision(ref, out / "vision.onnx")
            tables = {n: np.load(out / p.file) for n, p in export_tables(ref.vision_graph(), out).items()}
            session = ort.InferenceSession(str(out / part.file), providers=["CPUExecutionProvider"])
            processor = spec.bundle_spec(ckpt, read_config(ckpt)).processor
            made[name] = (ref, processor, ref.hf_processor(ckpt), session, tables)
        return made[name]

    return get


def _processor_inputs(processor, images):
    conversation = [{"role": "user", "content": [{"type": "image"}] * len(images) + [{"type": "text", "text": "Hi"}]}]
    text = processor.apply_chat_template(conversation, add_generation_prompt=True)
    return processor(images=[images], text=text, return_tensors="pt")


def _our_features(cfg, session, tables, images, tokens_per_tile):
    """Per image: (tile features from onnxruntime [n_chunks, T, D], packed rows [n_tokens, D])."""
    out = []
    for image in images:
        plan = plan_image(image, cfg, tokens_per_tile, len(images))
        pixels = prepare_image(image, cfg, plan).inputs["pixel_values"]  # [n_chunks, 3, S, S]
        tiles = session.run(None, {"pixel_values": pixels})[0]  # all tiles of the image in one batch
        out.append((tiles, pack_features(tiles, cfg, plan, tables)))
    return out


@pytest.mark.parametrize("name", TINY_NAMES)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_onnx_features_equal_transformers_per_tile_and_packed(parts, name, size):
    ref, cfg, processor, session, tables = parts(name)
    image = case_image(*size)
    inputs = _processor_inputs(processor, [image])
    want = reference.reference_image_features(ref.hf, inputs)
    ((tiles, packed),) = _our_features(cfg, session, tables, [image], ref.vision_graph().tokens_per_chunk())
    assert tiles.shape == tuple(want.tiles.shape)
    worst_tile = min(_cosine(ours, theirs) for ours, theirs in zip(tiles, want.tiles.numpy()))
    assert worst_tile >= COSINE
    assert packed.shape == tuple(want.packed[0].shape)  # unpadded rows + newline column (+ pooling) line up
    assert _cosine(packed, want.packed[0].numpy()) >= COSINE
    assert int((inputs["input_ids"] == ref.image_token_id).sum()) == packed.shape[0]


@pytest.mark.parametrize("name", TINY_NAMES)
def test_two_images_in_one_prompt(parts, name):
    """OneVision then skips tiling (mean-padded square + one newline each); NeXT tiles each image."""
    ref, cfg, processor, session, tables = parts(name)
    images = [case_image(130, 90), case_image(300, 40)]
    want = reference.reference_image_features(ref.hf, _processor_inputs(processor, images))
    ours = _our_features(cfg, session, tables, images, ref.vision_graph().tokens_per_chunk())
    assert len(want.packed) == 2
    for (_, packed), theirs in zip(ours, want.packed):
        assert packed.shape == tuple(theirs.shape)
        assert _cosine(packed, theirs.numpy()) >= COSINE


@pytest.mark.parametrize("name", TINY_NAMES)
def test_vision_module_is_transformers_get_image_features(parts, name):
    """The exported module (tower to the feature layer, CLS drop, projector) reproduces transformers exactly."""
    ref, _, processor, _, _ = parts(name)
    inputs = _processor_inputs(processor, [case_image(431, 100)])
    want = reference.reference_image_features(ref.hf, inputs)
    pixels = inputs["pixel_values"].reshape(-1, *inputs["pixel_values"].shape[-3:])[: want.tiles.shape[0]]
    with torch.no_grad():
        ours = ref.image_features(pixels)
    assert torch.equal(ours, want.tiles)
    tower_layers = len(ref.hf.model.vision_tower.encoder.layers)
    assert len(ref.vision.layers) == (tower_layers - 1 if name != "llava-onevision" else tower_layers)


def test_missing_newline_table_is_a_clear_error(parts):
    from edgevlm.errors import BundleError

    ref, cfg, _, session, _ = parts("llava-next")
    image = case_image(130, 90)
    plan = plan_image(image, cfg, 16, 1)
    tiles = session.run(None, {"pixel_values": prepare_image(image, cfg, plan).inputs["pixel_values"]})[0]
    with pytest.raises(BundleError, match="image_newline"):
        pack_features(tiles, cfg, plan, {})
