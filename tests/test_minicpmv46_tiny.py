"""Tiny MiniCPM-V 4.6 / 4.7 checkpoints: the published hub layout, loaded and run by transformers' own classes."""

from __future__ import annotations

import hashlib
import json

import pytest

torch = pytest.importorskip("torch")

from edgevlm.families import family_for  # noqa: E402
from edgevlm.families.minicpmv4_6.reference import load_processor, processor_outputs  # noqa: E402
from edgevlm.families.tiny import make_tiny  # noqa: E402
from tests.test_processing_slicing import synthetic_image  # noqa: E402

PUBLISHED_FILES = {"config.json", "generation_config.json", "model.safetensors", "preprocessor_config.json",
                   "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"}


@pytest.fixture(scope="module")
def checkpoint(tiny):
    return lambda version: tiny(f"minicpmv-{version}")


@pytest.mark.parametrize("version", ["4.6", "4.7"])
def test_layout_and_tensor_names_are_the_published_ones(checkpoint, version):
    from safetensors import safe_open

    path = checkpoint(version)
    assert {p.name for p in path.iterdir()} == PUBLISHED_FILES
    config = json.loads((path / "config.json").read_text())
    assert family_for(path).name == "minicpmv4_6" and config["model_type"] == f"minicpmv{version.replace('.', '_')}"
    text = config["text_config"]
    assert {"linear_attention", "full_attention"} <= set(text["layer_types"]) and 2 <= text["num_hidden_layers"] <= 4
    assert 64 <= text["hidden_size"] <= 128
    with safe_open(str(path / "model.safetensors"), "pt") as f:
        names = set(f.keys())
    assert "lm_head.weight" not in names  # tied to the embeddings, as openbmb/MiniCPM-V-4.6 ships it
    prefixes = {n.split(".")[1] for n in names}
    assert prefixes == {"vision_tower", "merger", "language_model"}, prefixes
    for name in ("model.vision_tower.vit_merger.self_attn.q_proj.weight", "model.merger.mlp.0.linear_1.weight",
                 "model.language_model.layers.0.linear_attn.in_proj_qkv.weight",
                 "model.language_model.layers.0.linear_attn.A_log",
                 "model.language_model.layers.1.self_attn.q_norm.weight"):
        assert name in names, name
    tokenizer_config = json.loads((path / "tokenizer_config.json").read_text())
    assert tokenizer_config["image_token"] == "<|image_pad|>"  # transformers 5 writes the named tokens at top level
    preprocessor = json.loads((path / "preprocessor_config.json").read_text())
    assert preprocessor["processor_class"] == f"MiniCPMV{version.replace('.', '_')}Processor"


@pytest.mark.slow
def test_deterministic(tmp_path):
    digests = []
    for run in ("a", "b"):
        path = make_tiny("minicpmv-4.6", tmp_path / run, seed=0)
        digests.append({f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in path.iterdir()})
    assert digests[0] == digests[1]


@pytest.mark.parametrize("version", ["4.6", "4.7"])
def test_transformers_auto_classes_load_and_generate_with_an_image(checkpoint, version):
    from transformers import AutoModelForImageTextToText

    path = checkpoint(version)
    model = AutoModelForImageTextToText.from_pretrained(str(path), dtype=torch.float32).eval()
    assert type(model).__name__ == f"MiniCPMV{version.replace('.', '_')}ForConditionalGeneration"
    assert model.lm_head.weight is model.model.language_model.embed_tokens.weight
    processor = load_processor(path)
    inputs = processor_outputs(processor, "What is in the image?", [synthetic_image(700, 500, 1)])
    text = processor.tokenizer.decode(inputs["input_ids"][0])
    # the chat template and the processor lay out one image as MiniCPM-V 4.6 does
    assert text.startswith("<|im_start|>user\n<image_id>0</image_id><image><|image_pad|>")
    assert "</image><slice>" in text and text.endswith("What is in the image?<|im_end|>\n<|im_start|>assistant\n"
                                                        "<think>\n\n</think>\n\n")
    n_image_tokens = int((inputs["input_ids"] == model.config.image_token_id).sum())
    assert n_image_tokens == int(inputs["target_sizes"].prod(-1).sum()) // 16
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    new = out[0, inputs["input_ids"].shape[1]:].tolist()
    print(f"{version}: {inputs['input_ids'].shape[1]} prompt tokens ({n_image_tokens} image), generated {new}")
    assert len(new) == 8 and len(set(new)) > 1


def test_autoprocessor_loads_when_torchvision_is_available(checkpoint):
    """AutoProcessor needs torchvision for MiniCPM-V's video processor; this environment has no CPU build."""
    pytest.importorskip("torchvision")
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(str(checkpoint("4.6")))
    assert type(processor).__name__ == "MiniCPMV4_6Processor"
