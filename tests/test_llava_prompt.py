"""LLaVA prompts: our token ids equal transformers' processor input_ids (chat template + image expansion).

Ours: ``spec.llava_spec`` (torch-free data from the checkpoint) -> the image plans -> per-image token
counts -> ``image_tokens.build_prompt_counted`` -> tokenizer.json. transformers: the processor's
``apply_chat_template`` and ``__call__`` (which expands each ``<image>`` to the image's count).
"""

from __future__ import annotations

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")

from edgevlm.errors import PromptError  # noqa: E402
from edgevlm.families.llava import reference  # noqa: E402
from edgevlm.families.llava.spec import LlavaSpec, llava_spec  # noqa: E402
from edgevlm.families.llava.tiny import NAMES  # noqa: E402
from edgevlm.processing.anyres import plan_anyres, plan_base_only  # noqa: E402
from edgevlm.processing.image_tokens import build_prompt_counted, layout_tokens_counted  # noqa: E402
from edgevlm.processing.prompt import IMAGE, build_prompt, layout_tokens  # noqa: E402
from edgevlm.processing.tokenizer import Tokenizer  # noqa: E402
from llava_cases import case_image  # noqa: E402


def image_token_counts(spec: LlavaSpec, sizes: list[tuple[int, int]]) -> list[int]:
    """What the runtime will do per image: the fixed count (1.5) or the anyres plan's (NeXT, OneVision)."""
    if spec.fixed_tokens:
        return [spec.fixed_tokens] * len(sizes)
    alone = len(sizes) == 1 or spec.images.max_tiles is None  # OneVision tiles a lone image only
    plan = plan_anyres if alone else plan_base_only
    return [plan(h, w, spec.images).n_tokens for w, h in sizes]


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
    for name in NAMES:
        for label, messages in CONVERSATIONS.items():
            n_images = sum(part is IMAGE for m in messages for part in m["content"])
            sizes_list = [[]] if n_images == 0 else (SIZE_SETS if n_images == 1 else [[(130, 90), (300, 40)],
                                                                                        [(1000, 900), (20, 20)]])
            for sizes in sizes_list:
                yield pytest.param(name, messages, sizes, id=f"{name}-{label}-{'-'.join(f'{w}x{h}' for w, h in sizes)}")


@pytest.mark.parametrize("name,messages,sizes", list(_cases()))
def test_prompt_ids_equal_the_processor(tiny, name, messages, sizes):
    ckpt = tiny(name)
    spec = llava_spec(ckpt)
    processor = reference.load_processor(ckpt)
    images = [case_image(w, h) for w, h in sizes]
    hf_messages = [{"role": m["role"], "content": _hf_content(m["content"])} for m in messages]
    chat = processor.apply_chat_template(hf_messages, add_generation_prompt=True)
    expected = processor(images=[images] if images else None, text=chat, return_tensors="np")["input_ids"][0]

    counts = image_token_counts(spec, sizes)
    prompt = build_prompt_counted(messages, counts, spec.layout, spec.template)
    tokenizer = Tokenizer.from_file(ckpt / "tokenizer.json")
    ours = layout_tokens_counted(tokenizer, prompt, spec.layout, counts)
    assert ours.input_ids.tolist() == expected.tolist()
    assert len(ours.image_positions) == sum(counts)


def test_fixed_count_images_need_nothing_new(tiny):
    """LLaVA 1.5's count is the same for every image: prompt.build_prompt (chunks x tokens_per_chunk) fits."""
    ckpt = tiny("llava")
    spec = llava_spec(ckpt)
    tokenizer = Tokenizer.from_file(ckpt / "tokenizer.json")
    messages = [{"role": "user", "content": [IMAGE, IMAGE, "Compare them."]}]
    old = layout_tokens(tokenizer, build_prompt(messages, [None, None], spec.layout, spec.template), spec.layout, [1, 1])
    new = layout_tokens_counted(tokenizer, build_prompt_counted(messages, [spec.fixed_tokens] * 2, spec.layout,
                                                                spec.template), spec.layout, [spec.fixed_tokens] * 2)
    assert np.array_equal(old.input_ids, new.input_ids)


def test_typed_image_token_is_a_clear_error(tiny):
    ckpt = tiny("llava-next")
    spec = llava_spec(ckpt)
    with pytest.raises(PromptError, match="marker"):
        build_prompt_counted([{"role": "user", "content": [IMAGE, "what is <image> here"]}], [70], spec.layout,
                             spec.template)
    tokenizer = Tokenizer.from_file(ckpt / "tokenizer.json")
    with pytest.raises(PromptError, match="images need 70"):
        layout_tokens_counted(tokenizer, "USER: " + "<image>" * 71 + " ASSISTANT:", spec.layout, [70])
