"""PaliGemma / PaliGemma 2 / Gemma 3: pixels and token ids equal transformers' processors (live).

The reference is transformers' own ``AutoProcessor`` (5.23: ``PaliGemmaProcessor`` with
``SiglipImageProcessor``, ``Gemma3Processor`` with ``Gemma3ImageProcessor``; without torchvision
these resolve to the Pillow backends, which are the ones that match Pillow exactly) loaded from the
tiny checkpoints written by ``edgevlm.families.tiny.make_tiny``. Nothing is stored: every test
compares against the processor's output in the same run.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from edgevlm.processing.config import ChatTemplate, ImageLayout, ProcessorConfig
from edgevlm.processing.images import load_image
from edgevlm.processing.preprocess import preprocess_fixed
from edgevlm.processing.prompt import IMAGE, build_prompt, layout_tokens
from edgevlm.processing.tokenizer import Tokenizer

transformers = pytest.importorskip("transformers")
tiny = pytest.importorskip("edgevlm.families.tiny")

_RESAMPLE_NAMES = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic"}


def processor_config(checkpoint) -> ProcessorConfig:
    """What a family file derives from preprocessor_config.json (done here for the test only)."""
    # transformers 5 writes processor_config.json with the image processor nested; 4.x wrote
    # preprocessor_config.json
    path = checkpoint / "processor_config.json"
    data = json.loads((path if path.exists() else checkpoint / "preprocessor_config.json").read_text())
    data = data.get("image_processor", data)
    assert data["size"]["height"] == data["size"]["width"]
    return ProcessorConfig(
        kind="fixed",
        image_size=data["size"]["height"],
        mean=tuple(data["image_mean"]),
        std=tuple(data["image_std"]),
        resample=_RESAMPLE_NAMES[data["resample"]],
        rescale_factor=data["rescale_factor"],
    )


def paligemma_layout(tokens: int) -> ImageLayout:
    return ImageLayout(
        feature_token="<image>",
        tokens_per_chunk=tokens,
        overview_template="{features}",
        marker="<image>",
        auto_marker_joiner="",
        after_last_image="<bos>",
        attention="prefix",
    )


PALIGEMMA_TEMPLATE = ChatTemplate(
    system_template="{content}\n",
    user_template="{content}\n",
    assistant_template="{content}\n",
    generation_prompt="",
    eos="<eos>",
    stop_strings=("<eos>",),
)


def gemma3_layout(tokens: int) -> ImageLayout:
    return ImageLayout(
        feature_token="<image_soft_token>",
        tokens_per_chunk=tokens,
        overview_template="\n\n<start_of_image>{features}<end_of_image>\n\n",
        marker="<start_of_image>",
        auto_marker_joiner="",
        attention="image_blocks",
    )


GEMMA3_TEMPLATE = ChatTemplate(
    user_template="<start_of_turn>user\n{content}<end_of_turn>\n",
    assistant_template="<start_of_turn>model\n{content}<end_of_turn>\n",
    generation_prompt="<start_of_turn>model\n",
    system_mode="first_user",
    bos="<bos>",
    strip_content="parts",
    stop_strings=("<end_of_turn>", "<eos>"),
)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_fixed")
    return {name: tiny.make_tiny(name, root / name) for name in ("paligemma", "paligemma2", "gemma3")}


@pytest.fixture(scope="module")
def processors(checkpoints):
    import logging

    logging.getLogger("transformers").setLevel(logging.ERROR)
    return {name: transformers.AutoProcessor.from_pretrained(str(path)) for name, path in checkpoints.items()}


def _image(width, height, mode="RGB", seed=0):
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    data = rng.integers(0, 256, size=(height, width, channels), dtype=np.uint8)
    return Image.fromarray(data.squeeze(-1) if channels == 1 else data, mode)


SIZES = [(224, 224), (333, 250), (1, 1), (4032, 3024), (50, 900), (225, 223)]


@pytest.mark.parametrize("name", ["paligemma", "paligemma2", "gemma3"])
def test_pixels_equal_the_processor(name, checkpoints, processors):
    cfg = processor_config(checkpoints[name])
    processor = processors[name]
    for index, (w, h) in enumerate(SIZES):
        for mode in ("RGB", "RGBA", "L") if index < 2 else ("RGB",):
            image = _image(w, h, mode, seed=index)
            expected = processor.image_processor(image, return_tensors="np")["pixel_values"][0]  # [3, S, S]
            ours = preprocess_fixed(load_image(image), cfg)
            assert ours.dtype == np.float32 and ours.shape == expected.shape
            np.testing.assert_array_equal(ours, expected, err_msg=f"{name} {w}x{h} {mode}")


def test_gemma3_resizes_bilinear_and_siglip_bicubic(checkpoints):
    assert processor_config(checkpoints["gemma3"]).resample == "bilinear"
    assert processor_config(checkpoints["paligemma"]).resample == "bicubic"


PALIGEMMA_PROMPTS = [
    ("caption en", None, 1),
    ("answer en what colour is the car?", None, 1),
    ("answer en what is it?", "a cat", 1),
    ("<image><image>compare", None, 2),
    ("detect cat", "<loc0012><loc0100><loc0500><loc0900> cat", 1),
]


@pytest.mark.parametrize("name", ["paligemma", "paligemma2"])
@pytest.mark.parametrize("text, suffix, n_images", PALIGEMMA_PROMPTS)
def test_paligemma_ids_and_token_types_equal_the_processor(name, text, suffix, n_images, checkpoints, processors):
    processor = processors[name]
    images = [_image(64, 48, seed=i) for i in range(n_images)]
    expected = processor(images=[images], text=[text], suffix=suffix, return_tensors="np")
    tokenizer = Tokenizer.from_file(checkpoints[name] / "tokenizer.json")
    layout_cfg = paligemma_layout(processor.image_seq_length)
    prompt = build_prompt(text, [None] * n_images, layout_cfg, PALIGEMMA_TEMPLATE, suffix=suffix)
    layout = layout_tokens(tokenizer, prompt, layout_cfg, [1] * n_images)
    assert layout.input_ids.tolist() == expected["input_ids"][0].tolist()
    assert layout.token_type_ids.tolist() == expected["token_type_ids"][0].tolist()
    # prefix-LM: image + <bos> + prefix + "\n" is one bidirectional block, the suffix is causal
    n_prefix = int((expected["token_type_ids"][0] == 0).sum())
    assert layout.prefix_length == n_prefix
    assert (layout.block_ids[:n_prefix] == 0).all() and (layout.block_ids[n_prefix:] == -1).all()
    image_id = tokenizer.token_to_id("<image>")
    assert layout.image_positions.tolist() == np.flatnonzero(expected["input_ids"][0] == image_id).tolist()
    assert len(layout.image_positions) == n_images * processor.image_seq_length


GEMMA3_CHATS = [
    [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]}],
    [{"role": "user", "content": [{"type": "text", "text": " Compare "}, {"type": "image"}, {"type": "image"}]}],
    [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A dog."}]},
        {"role": "user", "content": [{"type": "text", "text": "Colour?"}]},
    ],
]


@pytest.mark.parametrize("chat", GEMMA3_CHATS)
def test_gemma3_ids_and_token_types_equal_the_processor(chat, checkpoints, processors):
    processor = processors["gemma3"]
    n_images = sum(part["type"] == "image" for m in chat for part in m["content"])
    images = [_image(40, 30, seed=i) for i in range(n_images)]
    text = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    expected = processor(images=images, text=text, return_tensors="np")
    ours_chat = [
        {"role": m["role"], "content": [IMAGE if p["type"] == "image" else p["text"] for p in m["content"]]} for m in chat
    ]
    layout_cfg = gemma3_layout(processor.image_seq_length)
    prompt = build_prompt(ours_chat, [None] * n_images, layout_cfg, GEMMA3_TEMPLATE)
    tokenizer = Tokenizer.from_file(checkpoints["gemma3"] / "tokenizer.json")
    layout = layout_tokens(tokenizer, prompt, layout_cfg, [1] * n_images)
    assert layout.input_ids.tolist() == expected["input_ids"][0].tolist()
    assert layout.token_type_ids.tolist() == expected["token_type_ids"][0].tolist()
    # one bidirectional block per image, numbered in order
    blocks = layout.block_ids[layout.image_positions]
    assert blocks.tolist() == [b for b in range(n_images) for _ in range(processor.image_seq_length)]
    assert (layout.block_ids[expected["token_type_ids"][0] == 0] == -1).all()


def test_fixed_preprocess_of_encoded_bytes(checkpoints, processors):
    image = _image(120, 80, seed=5)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    cfg = processor_config(checkpoints["paligemma"])
    expected = processors["paligemma"].image_processor(image, return_tensors="np")["pixel_values"][0]
    np.testing.assert_array_equal(preprocess_fixed(load_image(buffer.getvalue()), cfg), expected)


def test_gemma3_auto_inserted_image_equals_an_explicit_image_part():
    layout_cfg = gemma3_layout(16)
    explicit = build_prompt([{"role": "user", "content": [IMAGE, "  hi there "]}], [None], layout_cfg, GEMMA3_TEMPLATE)
    implicit = build_prompt("  hi there ", [None], layout_cfg, GEMMA3_TEMPLATE)
    assert implicit.text == explicit.text and "<end_of_image>\n\nhi there<end_of_turn>" in implicit.text
