"""Qwen2-VL / Qwen2.5-VL bundles through edgevlm's runtime against transformers' own model.

Each tiny checkpoint is exported to ONNX (fused decoder graph, fp32) and to GGUF (fp32: llama.cpp's
qwen2vl arch, M-RoPE positions fed per row) and run by ``edgevlm.load``: our preprocessing, prompt
layout, M-RoPE positions (turn layer), vision part, decoder and generation loop. The reference is transformers' ``AutoModelForImageTextToText`` on its own processor's inputs:
first-step logits within 1e-3 and 32 greedy tokens equal to ``generate`` with one image, with two
images of different sizes, and in a two-turn chat (the second turn fed on top of the cached first)
equal to one prompt holding both turns. The per-request pixel budget (``max_pixels``) is used
throughout; the vision cache keys on it. Bad input fails with one clear error before heavy work.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from qwen2vl_hf import chat, hf_processor, synthetic_image  # noqa: E402

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("transformers")

import edgevlm  # noqa: E402
from edgevlm.errors import ImageError, PromptError  # noqa: E402
from edgevlm.export import export  # noqa: E402
from edgevlm.runtime.generate import feed  # noqa: E402
from edgevlm.runtime.turn import Conversation, prepare_turn  # noqa: E402

NAMES = ["qwen2-vl", "qwen2.5-vl"]
SLOW = pytest.mark.slow
# Default tier: each format, each model and each case at least once; the full cross product: slow tier.
PARITY_CASES = [("qwen2-vl", "one image", "onnx"), ("qwen2.5-vl", "two images", "onnx"),
                ("qwen2-vl", "two images", "gguf")]
CHAT_CASES = [("qwen2.5-vl", "onnx"), ("qwen2-vl", "gguf")]


def _tier(cases, *params):
    """pytest params of the cross product, the ones not in ``cases`` in the slow tier."""
    import itertools

    out = []
    for combo in itertools.product(*params):
        marks = [pytest.mark.gguf] if "gguf" in combo else []
        out.append(pytest.param(*combo, id="-".join(combo), marks=marks + ([] if combo in cases else [SLOW])))
    return out
MAX_PIXELS = 28 * 28 * 128  # a per-request budget: at most 128 image tokens per image
SIZE = {"shortest_edge": 3136, "longest_edge": MAX_PIXELS}  # the same budget for transformers' processor
TURN2 = "And this one?"


@pytest.fixture(scope="module")
def setup(tiny, tmp_path_factory):
    """(name, format) -> (transformers' processor, transformers' model, our loaded bundle), made once."""
    from transformers import AutoModelForImageTextToText

    models, bundles = {}, {}

    def get(name: str, format: str = "onnx"):
        if name not in models:
            ckpt = tiny(name)
            hf = AutoModelForImageTextToText.from_pretrained(str(ckpt), attn_implementation="eager").eval()
            models[name] = (hf_processor(ckpt), hf)
        if (name, format) not in bundles:
            if format == "gguf":
                pytest.importorskip("llama_cpp")
            bundle = tmp_path_factory.mktemp(f"{name}-{format}") / "bundle"
            export(tiny(name), bundle, format=format, validate=False, progress=None)
            bundles[name, format] = edgevlm.load(bundle, threads=1)  # steady on a busy 2-core machine
        return (*models[name], bundles[name, format])

    yield get
    for vlm in bundles.values():
        vlm.close()


def _hf_inputs(processor, text: str, images):
    return processor(text=[text], images=images, images_kwargs={"size": SIZE}, return_tensors="pt")


def _generate(hf, inputs, n: int = 32) -> list[int]:
    with torch.no_grad():
        return hf.generate(**inputs, max_new_tokens=n, do_sample=False)[0, inputs["input_ids"].shape[1]:].tolist()


def _tokens(result) -> list[int]:
    """The turn's sampled tokens as generate reports them (with the end-of-sequence token it stopped at)."""
    return result.token_ids + ([-1] if result.finish_reason == "eos" else [])


IMAGES = {"one image": [(300, 200)], "two images": [(300, 200), (123, 457)]}


@pytest.mark.parametrize("name,case,format", _tier(PARITY_CASES, NAMES, list(IMAGES), ["onnx", "gguf"]))
def test_logits_and_32_greedy_tokens_equal_transformers(setup, name, case, format):
    processor, hf, vlm = setup(name, format)
    sizes = IMAGES[case]
    images = [synthetic_image(w, h, seed) for seed, (w, h) in enumerate(sizes)]
    prompt = "Describe the image."
    inputs = _hf_inputs(processor, processor.apply_chat_template(
        chat(("user", ["IMAGE"] * len(images) + [prompt])), add_generation_prompt=True), images)
    assert len({tuple(g) for g in inputs["image_grid_thw"].tolist()}) == len(images)  # different grids

    turn = prepare_turn(vlm, Conversation(), prompt, images, image_options={"max_pixels": MAX_PIXELS})
    assert turn.ids.tolist() == inputs["input_ids"][0].tolist()
    vlm.backend.rewind(0)
    vlm._owner = None  # the next chat rebuilds its own cache
    logits = feed(vlm.backend, turn)
    with torch.no_grad():
        want_logits = hf(**inputs).logits[0, -1].numpy()
    diff = float(np.abs(logits - want_logits[:len(logits)]).max())
    print(f"{name} {format} {len(images)} image(s): first-step logits max abs diff {diff:.2e}")
    # ONNX: within 1e-3; llama.cpp sums in its own order: within 1e-3 of the largest logit
    assert diff <= 1e-3 * (1 if format == "onnx" else max(1.0, float(np.abs(want_logits).max())))

    result = vlm.generate(prompt, images, max_new_tokens=32, max_pixels=MAX_PIXELS)
    want = _generate(hf, inputs)
    assert result.token_ids == want[:len(result.token_ids)] and len(want) == 32 == len(_tokens(result))


@pytest.mark.parametrize("name,format", _tier(CHAT_CASES, NAMES, ["onnx", "gguf"]))
def test_two_turn_chat_reuses_the_cache_and_equals_one_prompt(setup, name, format):
    processor, hf, vlm = setup(name, format)
    image_a, image_b = synthetic_image(300, 200, 0), synthetic_image(123, 457, 1)
    conversation = vlm.chat()
    first = conversation.send("What is this?", [image_a], max_new_tokens=8, max_pixels=MAX_PIXELS)
    assert first.finish_reason == "length"  # a full answer: turn 2 follows a real assistant turn
    second = conversation.send(TURN2, [image_b], max_new_tokens=32, max_pixels=MAX_PIXELS)
    assert second.stats.reused_tokens > 0 and second.stats.images == 1

    # One prompt holding both turns: turn 1 as the processor renders it, the answer's ids, then turn 2
    # as the chat template renders it after an assistant message (close, user turn, generation cue).
    turn1 = _hf_inputs(processor, processor.apply_chat_template(chat(("user", ["IMAGE", "What is this?"])),
                                                                add_generation_prompt=True), [image_a])
    text2 = "<|im_end|>\n<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>" + TURN2 + \
            "<|im_end|>\n<|im_start|>assistant\n"
    turn2 = _hf_inputs(processor, text2, [image_b])
    ids = torch.cat([turn1["input_ids"], torch.tensor([first.token_ids]), turn2["input_ids"]], dim=1)
    whole = {"input_ids": ids, "attention_mask": torch.ones_like(ids),
             "pixel_values": torch.cat([turn1["pixel_values"], turn2["pixel_values"]]),
             "image_grid_thw": torch.cat([turn1["image_grid_thw"], turn2["image_grid_thw"]]),
             "mm_token_type_ids": (ids == hf.config.image_token_id).long()}
    want = _generate(hf, whole)
    assert second.token_ids == want[:len(second.token_ids)] and len(_tokens(second)) == 32


def test_max_pixels_sets_the_token_budget_and_the_vision_cache_keys_on_it(setup):
    _, _, vlm = setup("qwen2-vl")
    image = synthetic_image(640, 480, 3)
    small = vlm.generate("Hi", [image], max_new_tokens=1, max_pixels=28 * 28 * 16)
    large = vlm.generate("Hi", [image], max_new_tokens=1, max_pixels=28 * 28 * 64)
    again = vlm.generate("Hi", [image], max_new_tokens=1, max_pixels=28 * 28 * 16)
    assert large.stats.prompt_tokens - small.stats.prompt_tokens == _tokens_at(image, 64) - _tokens_at(image, 16)
    assert (small.stats.images_from_cache, large.stats.images_from_cache, again.stats.images_from_cache) == (0, 0, 1)
    assert again.stats.prompt_tokens == small.stats.prompt_tokens


def _tokens_at(image, budget_tokens: int | None) -> int:
    """Image tokens of ``image`` under a budget of that many 28x28 tokens (None: the published budget)."""
    from edgevlm.processing.native_resolution import NativeResolutionConfig, plan_native_resolution

    budget = 12845056 if budget_tokens is None else 28 * 28 * budget_tokens
    return plan_native_resolution(image.size, NativeResolutionConfig(max_pixels=budget)).n_tokens


def _refuse_vision(vlm, monkeypatch):
    """Make any image work fail loudly: the error under test must come first."""
    def fail(*args, **kwargs):
        raise AssertionError("the vision part ran before the bad input was refused")

    monkeypatch.setattr(vlm.backend, "encode_images", fail)


def test_bad_input_fails_before_heavy_work(setup, tmp_path, monkeypatch):
    _, _, vlm = setup("qwen2-vl")
    _refuse_vision(vlm, monkeypatch)
    missing = str(tmp_path / "not-there.png")  # settings are refused before the image is even opened
    with pytest.raises(ImageError, match="min_pixels 500000 is larger than max_pixels 200000"):
        vlm.generate("Hi", [missing], min_pixels=500_000, max_pixels=200_000)
    with pytest.raises(ImageError, match="smaller than one 28x28 image token"):
        vlm.generate("Hi", [synthetic_image(27, 300)])
    with pytest.raises(PromptError, match="more than the context"):  # 2800x2800 px at the published budget
        vlm.generate("Hi", [synthetic_image(2800, 2800)])
    with pytest.raises(ImageError, match="not a pixel count"):
        vlm.generate("Hi", [synthetic_image(64, 64)], max_pixels="lots")
    with pytest.raises(ImageError, match="below one 28x28 image token"):
        vlm.generate("Hi", [synthetic_image(64, 64)], max_pixels=700)


def test_pixel_budget_is_refused_by_kinds_without_one():
    from edgevlm.processing.config import ProcessorConfig
    from edgevlm.runtime.images import request_processor

    with pytest.raises(ImageError, match="max_pixels applies to native_resolution bundles"):
        request_processor(ProcessorConfig(kind="slice"), {"max_pixels": 200_000})
    assert request_processor(ProcessorConfig(kind="slice"), {"max_pixels": None}).kind == "slice"


def test_cli_run_takes_max_pixels(setup, tmp_path):
    from typer.testing import CliRunner

    from edgevlm.cli import app

    _, _, vlm = setup("qwen2-vl")
    path = tmp_path / "image.png"
    synthetic_image(640, 480).save(path)
    runs = [CliRunner().invoke(app, ["run", str(vlm.bundle), "-p", "Hi", "-i", str(path), "--max-tokens", "1",
                                     "--json", *extra]) for extra in ([], ["--max-pixels", str(28 * 28 * 16)])]
    import json

    tokens = [json.loads(r.stdout)["stats"]["prompt_tokens"] for r in runs]
    image = synthetic_image(640, 480)
    assert tokens[0] - tokens[1] == _tokens_at(image, None) - _tokens_at(image, 16) > 300
