"""The tiny SmolVLM / Idefics3 / InternVL checkpoints are real and useful: transformers' own Auto classes
load and run them, our reference (families/<folder>/reference.py) equals transformers' from_pretrained,
its parts rebuild transformers' logits, and greedy decoding writes varied, image-dependent text (so a
32-token parity comparison tests something). The vision parts' ONNX parity is in test_tiles_export.py (the
export check, per tile) and test_tiles_gguf.py (against mtmd); here, the one place our vision forward
departs from transformers' code (full-tile position ids) is checked at every published tile size."""

from __future__ import annotations

import json

import pytest
import torch

from edgevlm.families import family_for, load_reference
from tiles_reference import hf_processor, synthetic_image

pytest.importorskip("transformers")
NAMES = ["smolvlm", "idefics3", "internvl"]
MESSAGES = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is in the image?"}]}]


def _inputs(processor, image):
    text = processor.apply_chat_template(MESSAGES, add_generation_prompt=True)
    return processor(text=text, images=[image], return_tensors="pt")


@pytest.mark.parametrize("name", NAMES)
def test_auto_classes_and_our_reference_agree_and_write_varied_text(tiny, name):
    from transformers import AutoModelForImageTextToText

    ckpt = tiny(name)
    processor = hf_processor(ckpt)
    inputs = _inputs(processor, synthetic_image(200, 90))
    theirs = AutoModelForImageTextToText.from_pretrained(str(ckpt)).eval()
    ours = load_reference(ckpt)
    assert family_for(ckpt).name == ours.family == ("internvl" if name == "internvl" else "idefics3")
    with torch.no_grad():
        want = theirs(**inputs).logits
    assert (ours.reference_logits(**inputs) - want).abs().max().item() < 1e-4
    # the parts the exporters take (image features -> merged embeddings -> text model) rebuild the logits
    pixels = inputs["pixel_values"]
    features = ours.image_features(pixels[0] if pixels.ndim == 5 else pixels)  # [n, tokens, hidden]
    assert (ours.logits(inputs["input_ids"], features) - want).abs().max().item() < 1e-4

    tokens = ours.reference_generate(32, **inputs)
    other = ours.reference_generate(32, **_inputs(processor, synthetic_image(90, 200, seed=3)))
    print(f"{name}: {len(set(tokens))} distinct of {len(tokens)}: {tokens[:12]}...; other image: {other[:6]}...")
    assert len(tokens) == 32 and len(set(tokens)) >= 16  # no end-of-turn, no single repeated token
    assert tokens != other  # the text depends on the image


@pytest.mark.parametrize("name, processor_class, image_processor_class", [
    ("smolvlm", "SmolVLMProcessor", "SmolVLMImageProcessorPil"),
    ("idefics3", "Idefics3Processor", "Idefics3ImageProcessorPil"),
    ("internvl", "InternVLProcessor", "GotOcr2ImageProcessorPil")])
def test_processor_files_resolve_like_the_published_ones(tiny, name, processor_class, image_processor_class):
    ckpt = tiny(name)
    processor = hf_processor(ckpt)
    assert type(processor).__name__ == processor_class
    assert type(processor.image_processor).__name__ == image_processor_class  # no torchvision: the Pillow backend
    config = json.loads((ckpt / "config.json").read_text())
    assert config["image_token_id"] == processor.image_token_id
    names = set(json.loads((ckpt / "model.safetensors").read_bytes()[8:8 + int.from_bytes(
        (ckpt / "model.safetensors").read_bytes()[:8], "little")]))
    published = {"smolvlm": "model.connector.modality_projection.proj.weight",
                 "idefics3": "model.vision_model.post_layernorm.weight",
                 "internvl": "multi_modal_projector.linear_2.weight"}
    assert published[name] in names and ("lm_head.weight" in names) == (name != "internvl")  # InternVL ties it


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
