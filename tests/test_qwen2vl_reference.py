"""Tiny Qwen2-VL / Qwen2.5-VL checkpoints and the reference parts against transformers' own model.

The checkpoints must look published (flat config.json, ``visual.*`` / ``model.*`` tensor names,
chat template, processor files) and load through ``AutoProcessor`` / ``AutoModelForImageTextToText``;
the reference (our loader and name mapping, image features, embeddings, M-RoPE text model) must
give transformers' logits and greedy tokens.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from qwen2vl_hf import chat, hf_processor, synthetic_image  # noqa: E402

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from edgevlm.families.qwen2_vl.reference import load_reference  # noqa: E402

NAMES = ["qwen2-vl", "qwen2.5-vl"]
SIZE = {"shortest_edge": 3136, "longest_edge": 28 * 28 * 256}


@pytest.fixture(scope="module")
def loaded(tiny):
    from transformers import AutoModelForImageTextToText

    out = {}
    for name in NAMES:
        ckpt = tiny(name)
        hf = AutoModelForImageTextToText.from_pretrained(str(ckpt), attn_implementation="eager").eval()
        out[name] = (ckpt, hf_processor(ckpt), hf, load_reference(ckpt))
    return out


def _inputs(processor, messages, images):
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    return processor(text=[text], images=images, images_kwargs={"size": SIZE}, return_tensors="pt")


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_is_in_the_published_layout(tiny, name):
    from safetensors import safe_open

    ckpt = tiny(name)
    config = json.loads((ckpt / "config.json").read_text())
    assert config["rope_scaling"] == {"type": "mrope", "mrope_section": [2, 3, 3]} and "text_config" not in config
    with safe_open(str(ckpt / "model.safetensors"), "pt") as f:
        names = set(f.keys())
    assert "visual.patch_embed.proj.weight" in names and "visual.merger.mlp.2.weight" in names
    assert "model.embed_tokens.weight" in names and "model.layers.1.self_attn.q_proj.bias" in names
    assert not any(k.startswith("model.language_model.") or k.startswith("model.visual.") for k in names)
    assert ("lm_head.weight" in names) == (not config["tie_word_embeddings"])
    if name == "qwen2.5-vl":
        vision = config["vision_config"]
        windowed = [i for i in range(vision["depth"]) if i not in vision["fullatt_block_indexes"]]
        assert windowed and vision["fullatt_block_indexes"] and "visual.blocks.0.mlp.gate_proj.bias" in names
    template = json.loads((ckpt / "tokenizer_config.json").read_text())["chat_template"]
    assert "<|vision_start|><|image_pad|><|vision_end|>" in template
    assert json.loads((ckpt / "chat_template.json").read_text())["chat_template"] == template


@pytest.mark.parametrize("name", NAMES)
def test_transformers_auto_classes_load_and_generate(loaded, name):
    _, processor, hf, _ = loaded[name]
    assert type(hf).__name__ == {"qwen2-vl": "Qwen2VLForConditionalGeneration",
                                 "qwen2.5-vl": "Qwen2_5_VLForConditionalGeneration"}[name]
    inputs = _inputs(processor, chat(("user", ["IMAGE", "What is in the image?"])), [synthetic_image(300, 200)])
    assert inputs["image_grid_thw"].tolist() == [[1, 14, 22]]
    with torch.no_grad():
        out = hf.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 8


@pytest.mark.parametrize("name", NAMES)
def test_reference_weights_equal_from_pretrained(loaded, name):
    _, _, hf, ref = loaded[name]
    ours = ref.hf.state_dict()
    theirs = hf.state_dict()
    assert set(ours) == set(theirs)
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


@pytest.mark.slow  # the bundles against transformers in tests/test_qwen2vl_runtime.py cover this chain end to end
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n_images", [1, 2])
def test_reference_parts_give_transformers_logits_and_tokens(loaded, name, n_images):
    _, processor, hf, ref = loaded[name]
    images = [synthetic_image(300, 200, 0), synthetic_image(123, 457, 1)][:n_images]
    parts = (["IMAGE", "What is in the image?"] if n_images == 1 else ["Compare", "IMAGE", "and", "IMAGE"])
    inputs = _inputs(processor, chat(("user", parts)), images)
    with torch.no_grad():
        want_logits = hf(**inputs).logits  # [1, T, V]
        features = ref.image_features(inputs["pixel_values"], inputs["image_grid_thw"])
        logits = ref.logits(inputs["input_ids"], features, image_grid_thw=inputs["image_grid_thw"])
        want_tokens = hf.generate(**inputs, max_new_tokens=32, do_sample=False)[0, inputs["input_ids"].shape[1]:]
    assert features.shape[:2] == (1, int((inputs["input_ids"] == hf.config.image_token_id).sum()))
    assert float((logits - want_logits).abs().max()) <= 1e-4
    tokens = ref.greedy(inputs["input_ids"], features, 32, image_grid_thw=inputs["image_grid_thw"])
    assert tokens == want_tokens.tolist()
    assert len(set(tokens)) >= 16  # the tiny models do not just repeat a token


@pytest.mark.slow
def test_the_image_changes_the_answer(loaded):
    _, processor, _, ref = loaded["qwen2.5-vl"]
    answers = []
    for seed in (0, 1):
        inputs = _inputs(processor, chat(("user", ["IMAGE", "What is in the image?"])),
                         [synthetic_image(300, 200, seed)])
        features = ref.image_features(inputs["pixel_values"], inputs["image_grid_thw"])
        answers.append(ref.greedy(inputs["input_ids"], features, 8, image_grid_thw=inputs["image_grid_thw"]))
    assert answers[0] != answers[1]
    assert np.isfinite(features.detach().numpy()).all()
