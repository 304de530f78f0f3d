"""LLaVA prompts: our token ids equal transformers' processor input_ids (chat template + image expansion).

Ours, the runtime's path: ``spec.bundle_spec`` (torch-free data from the checkpoint) -> each image's
plan from its size (``runtime.images.plan_image``, the processor kind's ``plan``) -> ``prompt.build_prompt``
over the plans -> ``layout_tokens`` with tokenizer.json. transformers: the processor's
``apply_chat_template`` and ``__call__`` (which expands each ``<image>`` to the image's count).
"""

from __future__ import annotations

import pytest

transformers = pytest.importorskip("transformers")

from edgevlm.errors import PromptError  # noqa: E402
from edgevlm.families import read_config  # noqa: E402
from edgevlm.families.llava import reference, spec  # noqa: E402
from edgevlm.families.llava.spec import TINY_NAMES  # noqa: E402
from edgevlm.processing.prompt import IMAGE, build_prompt, layout_tokens  # noqa: E402
from edgevlm.processing.tokenizer import Tokenizer  # noqa: E402
from edgevlm.runtime.images import plan_image  # noqa: E402
from llava_cases import case_image  # noqa: E402


def _spec(ckpt):
    return spec.bundle_spec(ckpt, read_config(ckpt))


def image_plans(bundle, images):
    """What the runtime does per image: the processor kind's plan from the size and the image count."""
    return [plan_image(image, bundle.processor, bundle.layout.tokens_per_chunk, len(images)) for image in images]


def _hf_content(content):
    return [{"type": "image"} if part is IMAGE else {"type": "text", "text": part} for part in content]


CONVERSATIONS = {
    "one image": [{"role": "user", "content": [IMAGE, "What is in the image?"]}],
    "two images": [{"role": "user", "content": [IMAGE, IMAGE, "Compare them."]}],
    "text only": [{"role": "user", "content": ["Hello there"]}],
    "system and two turns": [
        {"role": "system", "content": ["You are a helpful assistant."]},
        {"role": "user", "content": [IMAGE, "Describe it."]},
        {"role": "assistant", "content": ["A cat on a chair."]},
        {"role": "user", "content": ["What colour is the chair?"]},
    ],
}
SIZE_SETS = [[(130, 90)], [(40, 300)], [(1000, 900)], [(20, 20)], [(431, 100)], [(2000, 60)], [(640, 480)]]


def _cases():
    for name in TINY_NAMES:
        for label, messages in CONVERSATIONS.items():
            n_images = sum(part is IMAGE for m in messages for part in m["content"])
            sizes_list = [[]] if n_images == 0 else (SIZE_SETS if n_images == 1 else [[(130, 90), (300, 40)],
                                                                                        [(1000, 900), (20, 20)]])
            for sizes in sizes_list:
                yield pytest.param(name, messages, sizes, id=f"{name}-{label}-{'-'.join(f'{w}x{h}' for w, h in sizes)}")


@pytest.mark.parametrize("name,messages,sizes", list(_cases()))
def test_prompt_ids_equal_the_processor(tiny, name, messages, sizes):
    ckpt = tiny(name)
    bundle = _spec(ckpt)
    processor = reference.load_processor(ckpt)
    images = [case_image(w, h) for w, h in sizes]
    hf_messages = [{"role": m["role"], "content": _hf_content(m["content"])} for m in messages]
    chat = processor.apply_chat_template(hf_messages, add_generation_prompt=True)
    expected = processor(images=[images] if images else None, text=chat, return_tensors="np")["input_ids"][0]

    plans = image_plans(bundle, images)
    prompt = build_prompt(messages, plans, bundle.layout, bundle.chat_template)
    tokenizer = Tokenizer.from_file(ckpt / "tokenizer.json")
    ours = layout_tokens(tokenizer, prompt, bundle.layout, tokens_per_image=[p.n_tokens for p in plans])
    assert ours.input_ids.tolist() == expected.tolist()
    assert len(ours.image_positions) == sum(p.n_tokens for p in plans)


def test_typed_image_token_is_a_clear_error(tiny):
    ckpt = tiny("llava-next")
    bundle = _spec(ckpt)
    with pytest.raises(PromptError, match="marker"):
        build_prompt([{"role": "user", "content": [IMAGE, "what is <image> here"]}], image_plans(bundle, [case_image(9, 9)]),
                     bundle.layout, bundle.chat_template)
    tokenizer = Tokenizer.from_file(ckpt / "tokenizer.json")
    with pytest.raises(PromptError, match="images need 70"):
        layout_tokens(tokenizer, "USER: " + "<image>" * 71 + " ASSISTANT:", bundle.layout, tokens_per_image=[70])
