"""The tiny SmolVLM / Idefics3 / InternVL checkpoints are real and useful: transformers' own Auto classes
load and run them, our reference (families/<folder>/reference.py) equals transformers' from_pretrained,
its parts rebuild transformers' logits, and greedy decoding writes varied, image-dependent text (so a
32-token parity comparison tests something)."""

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
