"""SmolVLM / Idefics3 / InternVL prompts: the generic prompt path with each family's manifest data gives
transformers' processor's input ids, and our pixels in the same order as its pixel_values.

Reference: the tiny checkpoint's own ``AutoProcessor`` (``SmolVLMProcessor`` / ``Idefics3Processor`` /
``InternVLProcessor``, chat template from the checkpoint): ``apply_chat_template`` then
``processor(text=..., images=...)``. Ours: ``Family.bundle_spec`` (processor kind, ImageLayout,
ChatTemplate), ``runtime.images.plan_image`` / ``prepare_image``, ``prompt.build_prompt``,
``Tokenizer`` over tokenizer.json, ``layout_tokens``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgevlm.errors import PromptError
from edgevlm.families import family_for
from edgevlm.processing.prompt import IMAGE, build_prompt, layout_tokens
from edgevlm.processing.tokenizer import Tokenizer
from edgevlm.runtime.images import plan_image, prepare_image
from tiles_reference import hf_processor, synthetic_image

pytest.importorskip("transformers")
NAMES = ["smolvlm", "idefics3", "internvl"]
CONVERSATIONS = {
    "image_first": [{"role": "user", "content": [IMAGE, "What is in the image?"]}],
    "text_first": [{"role": "user", "content": ["Describe this:", IMAGE]}],
    "two_images": [{"role": "user", "content": [IMAGE, "Compare with", IMAGE]}],
    "multi_turn": [{"role": "system", "content": ["You are brief."]},
                   {"role": "user", "content": [IMAGE, "What is it?"]},
                   {"role": "assistant", "content": ["A cat."]},
                   {"role": "user", "content": ["And the colour?"]}],
}
# one tile, extreme strips, exact tile sizes, larger than the limit
SIZES = [(150, 100), (1, 10000), (64, 64), (40, 30), (1000, 1000), (257, 64), (112, 112), (3000, 200)]


def hf_messages(messages):
    return [{"role": m["role"], "content": [{"type": "image"} if p is IMAGE else {"type": "text", "text": p}
                                            for p in m["content"]]} for m in messages]


def spec_of(ckpt):
    return family_for(ckpt).bundle_spec(ckpt, json.loads((ckpt / "config.json").read_text()))


def ours(ckpt, messages, images):
    spec = spec_of(ckpt)
    plans = [plan_image(im, spec.processor, spec.layout.tokens_per_chunk, len(images)) for im in images]
    prompt = build_prompt(messages, plans, spec.layout, spec.chat_template)
    tokenizer = Tokenizer.from_file(ckpt / "tokenizer.json")
    layout = layout_tokens(tokenizer, prompt, spec.layout, tokens_per_image=[p.n_tokens for p in plans])
    pixels = np.concatenate([prepare_image(im, spec.processor, p).inputs["pixel_values"] for im, p in zip(images, plans)])
    return layout, pixels


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("conversation", sorted(CONVERSATIONS))
def test_input_ids_and_pixels_equal_the_processor(tiny, name, conversation):
    ckpt = tiny(name)
    processor = hf_processor(ckpt)
    messages = CONVERSATIONS[conversation]
    n_images = sum(p is IMAGE for m in messages for p in m["content"])
    for offset in range(0, len(SIZES), 4):
        images = [synthetic_image(*SIZES[(offset + k) % len(SIZES)]) for k in range(n_images)]
        text = processor.apply_chat_template(hf_messages(messages), add_generation_prompt=True)
        ref = processor(text=text, images=images, return_tensors="np")
        layout, pixels = ours(ckpt, messages, images)
        assert layout.input_ids.tolist() == ref["input_ids"][0].tolist(), (conversation, offset)
        image_id = processor.tokenizer.convert_tokens_to_ids(processor.image_token)
        assert layout.image_positions.tolist() == np.flatnonzero(ref["input_ids"][0] == image_id).tolist()
        # the features' order (tiles row-major, overview last) is the processor's pixel order
        theirs = ref["pixel_values"]
        theirs = theirs[0][: len(pixels)] if theirs.ndim == 5 else theirs  # Idefics3 pads images to [1, n_max, ...]
        assert float(np.abs(theirs - pixels).max()) == 0.0


@pytest.mark.parametrize("name", NAMES)
def test_follow_up_turn_equals_the_whole_conversation(tiny, name):
    """A chat's second turn is rendered alone (close + user turn + cue); with the first turn's text it is
    the processor's text of the whole conversation (the runtime's chat reuse relies on it)."""
    from types import SimpleNamespace

    from edgevlm.runtime.turn import Conversation, turn_text

    ckpt = tiny(name)
    spec = spec_of(ckpt)
    processor = hf_processor(ckpt)
    vlm = SimpleNamespace(template=spec.chat_template, layout=spec.layout)
    image = synthetic_image(300, 200)
    plan = plan_image(image, spec.processor, spec.layout.tokens_per_chunk)
    first = turn_text(vlm, Conversation(), "What is it?", [plan])
    second = turn_text(vlm, Conversation(turns=1, images=1), "And the colour?", [])
    messages = [{"role": "user", "content": [IMAGE, "What is it?"]}, {"role": "assistant", "content": ["A cat."]},
                {"role": "user", "content": ["And the colour?"]}]
    text = processor.apply_chat_template(hf_messages(messages), add_generation_prompt=True)
    whole = processor(text=text, images=[image], return_tensors="np")["input_ids"][0]
    tokenizer = Tokenizer.from_file(ckpt / "tokenizer.json")
    answer = tokenizer.encode(spec.chat_template.text_first_prefix + "A cat.")  # what the model wrote after the cue
    ids = np.concatenate([tokenizer.encode(first), answer, tokenizer.encode(second)])
    assert ids.tolist() == whole.tolist()


@pytest.mark.parametrize("name", NAMES)
def test_more_images_than_places_is_a_clear_error(tiny, name):
    ckpt = tiny(name)
    spec = spec_of(ckpt)
    plans = [plan_image(synthetic_image(100, 100), spec.processor, spec.layout.tokens_per_chunk)] * 2
    with pytest.raises(PromptError, match=r"1 image marker\(s\).*2 image\(s\)"):
        build_prompt([{"role": "user", "content": [IMAGE, "one place"]}], plans, spec.layout, spec.chat_template)
