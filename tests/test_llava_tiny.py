"""The tiny LLaVA checkpoints are what llava-hf publishes, and transformers' own classes run them."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from edgevlm.families.llava import reference  # noqa: E402
from edgevlm.families.llava.spec import TINY_NAMES as NAMES  # noqa: E402
from edgevlm.families.llava.tiny import ONEVISION_TEMPLATE, VICUNA_TEMPLATE  # noqa: E402
from llava_cases import case_image  # noqa: E402

PUBLISHED_PREFIXES = ("language_model.model.", "language_model.lm_head.", "vision_tower.vision_model.",
                      "multi_modal_projector.")
ARCHITECTURE = {"llava": "LlavaForConditionalGeneration", "llava-next": "LlavaNextForConditionalGeneration",
                "llava-onevision": "LlavaOnevisionForConditionalGeneration"}


@pytest.mark.parametrize("name", NAMES)
def test_files_and_tensor_names_are_the_published_layout(tiny, name):
    from safetensors import safe_open

    ckpt = tiny(name)
    for file in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "processor_config.json",
                 "chat_template.jinja", "generation_config.json"):
        assert (ckpt / file).is_file(), file
    with safe_open(str(ckpt / "model.safetensors"), "np") as f:
        names = set(f.keys())
    newline = {"image_newline"} if name != "llava" else set()
    assert {n for n in names if not n.startswith(PUBLISHED_PREFIXES)} == newline
    assert "language_model.lm_head.weight" in names  # untied, as published
    assert any(n.startswith("vision_tower.vision_model.encoder.layers.") for n in names)
    config = json.loads((ckpt / "config.json").read_text())
    assert config["architectures"] == [ARCHITECTURE[name]]
    template = (ckpt / "chat_template.jinja").read_text()
    assert template == (ONEVISION_TEMPLATE if name == "llava-onevision" else VICUNA_TEMPLATE)


@pytest.mark.parametrize("name", NAMES)
def test_the_same_seed_writes_the_same_weights(tmp_path, name):
    from edgevlm.families.tiny import make_tiny

    digests = [hashlib.sha256((make_tiny(name, tmp_path / str(i)) / "model.safetensors").read_bytes()).hexdigest()
               for i in range(2)]
    assert digests[0] == digests[1]
    other = make_tiny(name, tmp_path / "other", seed=1) / "model.safetensors"
    assert hashlib.sha256(other.read_bytes()).hexdigest() != digests[0]


@pytest.mark.parametrize("name", NAMES)
def test_transformers_loads_and_generates_with_an_image(tiny, name):
    from transformers import AutoModelForImageTextToText

    ckpt = tiny(name)
    model, info = AutoModelForImageTextToText.from_pretrained(str(ckpt), output_loading_info=True)
    assert type(model).__name__ == ARCHITECTURE[name]
    assert not any(info.values()), info  # no missing / unexpected / mismatched tensors
    processor = reference.load_processor(ckpt)
    conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is in the image?"}]}]
    text = processor.apply_chat_template(conversation, add_generation_prompt=True)
    inputs = processor(images=case_image(130, 90), text=text, return_tensors="pt")
    n_image_tokens = int((inputs["input_ids"] == model.config.image_token_id).sum())
    assert n_image_tokens == {"llava": 16, "llava-next": 70, "llava-onevision": 91}[name]
    with torch.no_grad():
        tokens = model.eval().generate(**inputs, max_new_tokens=8, do_sample=False)[0, inputs["input_ids"].shape[1]:]
    assert len(tokens) == 8 and all(0 <= int(t) < model.config.text_config.vocab_size for t in tokens)


def test_onevision_processor_is_transformers_own_without_video():
    """transformers 5 needs torchvision for OneVision's video processor; without it AutoProcessor fails
    and ``load_processor`` gives the same class with its image half only."""
    from transformers import LlavaOnevisionProcessor
    from transformers.utils import is_torchvision_available

    if is_torchvision_available():
        pytest.skip("torchvision is installed: AutoProcessor loads OneVision itself")
    cls = reference.onevision_processor_class()
    assert issubclass(cls, LlavaOnevisionProcessor)
    assert cls.get_attributes() == ["image_processor", "tokenizer"]


def test_vicuna_tokenizer_adds_bos_like_llama(tiny):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny("llava")))
    ids = tokenizer("USER: hi ASSISTANT:")["input_ids"]
    assert ids[0] == tokenizer.convert_tokens_to_ids("<s>") and ids[1] != ids[0]
    assert np.array_equal(tokenizer.convert_tokens_to_ids(["<image>"]), [3])


@pytest.mark.parametrize("name", [n if n == "llava-onevision" else pytest.param(n, marks=pytest.mark.slow)
                                  for n in NAMES])
def test_tiny_answers_depend_on_the_image_and_vary(tiny, name):
    """The tiny weights make 32-token greedy parity a real check: transformers' own answer to the export
    check's prompt varies from token to token, changes with the image, and its top-1 / top-2 logit gaps
    stay far above float32 noise (randomize()'s scales alone gave OneVision one token 32 times)."""
    from PIL import Image

    from edgevlm.processing.sample_image import sample_image

    ckpt = tiny(name)
    ref = reference.load_reference(ckpt)
    processor = ref.hf_processor(ckpt)
    conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe the image."}]}]
    text = processor.apply_chat_template(conversation, add_generation_prompt=True)
    answers = []
    # the export check's image: gaps >= 0.01 (fp32 noise is ~1e-5); a second image: its answer differs
    for floor, image in ((1e-2, sample_image()), (1e-4, Image.fromarray((np.random.RandomState(3).rand(300, 200, 3) * 255).astype(np.uint8)))):
        inputs = processor(images=image, text=text, return_tensors="pt")
        with torch.no_grad():
            out = ref.hf.generate(**inputs, max_new_tokens=32, do_sample=False, output_scores=True,
                                  return_dict_in_generate=True)
        gaps = [float(torch.topk(step[0], 2).values.diff().abs()) for step in out.scores]
        answers.append(out.sequences[0, inputs["input_ids"].shape[1]:].tolist())
        print(f"{name}: {len(set(answers[-1]))} distinct tokens of 32, smallest top-2 gap {min(gaps):.3f}")
        assert len(set(answers[-1])) >= 16 and min(gaps) > floor
    assert answers[0] != answers[1]
