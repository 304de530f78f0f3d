"""The tiny SmolVLM / Idefics3 / InternVL checkpoints are real: transformers' own Auto classes load and run
them, and our reference parts (image features, embeddings, text model) rebuild transformers' logits."""

from __future__ import annotations

import pytest
import torch

from tiles_reference import hf_processor, synthetic_image

pytest.importorskip("transformers")
MESSAGES = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is in the image?"}]}]


def _reference(name, ckpt):
    if name == "internvl":
        from edgevlm.families.internvl.reference import load_reference
    else:
        from edgevlm.families.idefics3.reference import load_reference
    return load_reference(ckpt)


@pytest.mark.parametrize("name", ["smolvlm", "idefics3", "internvl"])
def test_auto_classes_load_generate_and_parts_rebuild_the_logits(tiny, name):
    from transformers import AutoModelForImageTextToText

    ckpt = tiny(name)
    processor = hf_processor(ckpt)
    text = processor.apply_chat_template(MESSAGES, add_generation_prompt=True)
    inputs = processor(text=text, images=[synthetic_image(200, 90)], return_tensors="pt")
    model = AutoModelForImageTextToText.from_pretrained(str(ckpt)).eval()
    out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 4

    ref = _reference(name, ckpt)
    pixels = inputs["pixel_values"]
    tiles = pixels[0] if pixels.ndim == 5 else pixels  # Idefics3-style [1, n, 3, T, T] or InternVL [n, 3, T, T]
    features = ref.image_features(tiles)  # [n, tokens, hidden]
    ours = ref.logits(inputs["input_ids"], features)
    with torch.no_grad():
        theirs = ref.hf(**inputs).logits
    assert (ours - theirs).abs().max().item() < 1e-4
