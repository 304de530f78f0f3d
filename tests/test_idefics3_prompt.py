"""SmolVLM / Idefics3 prompt layout: our expanded text + tokenizer.json ids equal transformers' processor.

The reference is the tiny checkpoint's own ``AutoProcessor`` (``SmolVLMProcessor`` / ``Idefics3Processor``,
chat template from the checkpoint): ``apply_chat_template`` then ``processor(text=..., images=...)``.
Ours: ``square_tiles.plan_tiles`` for the grid, ``tiled_prompt.build_tiled_prompt`` with the family's
layout and chat data (families/idefics3/layout.py), ``Tokenizer`` over tokenizer.json, ``layout_tokens``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgevlm.families.idefics3 import layout as family
from edgevlm.processing.config import ChatTemplate, ImageLayout
from edgevlm.processing.prompt import IMAGE, build_prompt, layout_tokens
from edgevlm.processing.square_tiles import plan_tiles, preprocess_square_tiles
from edgevlm.processing.tiled_prompt import TileLayout, build_tiled_prompt
from edgevlm.processing.tokenizer import Tokenizer
from tiles_reference import hf_processor, synthetic_image

pytest.importorskip("transformers")

CONVERSATIONS = {
    "image_first": [{"role": "user", "content": [IMAGE, "What is in the image?"]}],
    "text_first": [{"role": "user", "content": ["Describe this:", IMAGE]}],
    "two_images": [{"role": "user", "content": [IMAGE, "Compare with", IMAGE]}],
    "multi_turn": [{"role": "system", "content": ["You are brief."]},
                   {"role": "user", "content": [IMAGE, "What is it?"]},
                   {"role": "assistant", "content": ["A cat."]},
                   {"role": "user", "content": ["And the colour?"]}],
}
SIZES = [(150, 100), (1, 10000), (64, 64), (40, 30), (1000, 1000), (257, 64)]


def hf_messages(messages):
    return [{"role": m["role"], "content": [{"type": "image"} if p is IMAGE else {"type": "text", "text": p}
                                            for p in m["content"]]} for m in messages]


def ours(ckpt, messages, images):
    config = json.loads((ckpt / "config.json").read_text())
    args = family.tiling(ckpt)
    grids, chunks = [], []
    for image in images:
        plan = plan_tiles(image.size, args["tile"], args["longest_edge"], args["split"])
        grids.append(family.grid_of(plan.rows, plan.cols))
        chunks.append(plan.n_tiles)
    layout = family.image_layout(family.tokens_per_tile(config))
    prompt = build_tiled_prompt(messages, grids, layout, family.chat_template(config["model_type"]))
    tokenizer = Tokenizer.from_file(ckpt / "tokenizer.json")
    return prompt, layout_tokens(tokenizer, prompt, layout, chunks)


@pytest.mark.parametrize("name", ["smolvlm", "idefics3"])
@pytest.mark.parametrize("conversation", sorted(CONVERSATIONS))
def test_input_ids_equal_the_processor(tiny, name, conversation):
    ckpt = tiny(name)
    processor = hf_processor(ckpt)
    messages = CONVERSATIONS[conversation]
    n_images = sum(p is IMAGE for m in messages for p in m["content"])
    for offset in range(0, len(SIZES), 2):
        images = [synthetic_image(*SIZES[(offset + k) % len(SIZES)]) for k in range(n_images)]
        text = processor.apply_chat_template(hf_messages(messages), add_generation_prompt=True)
        ref = processor(text=text, images=images, return_tensors="np")
        prompt, layout = ours(ckpt, messages, images)
        assert layout.input_ids.tolist() == ref["input_ids"][0].tolist(), (conversation, offset)
        image_id = processor.tokenizer.convert_tokens_to_ids("<image>")
        assert layout.image_positions.tolist() == np.flatnonzero(ref["input_ids"][0] == image_id).tolist()
        # the features' order (tiles row-major, global last) is the processor's pixel order
        args = family.tiling(ckpt)
        pixels = np.concatenate([preprocess_square_tiles(im, args["tile"], args["longest_edge"], args["mean"],
                                                         args["std"]).pixel_values for im in images])
        assert float(np.abs(ref["pixel_values"][0][: len(pixels)] - pixels).max()) == 0.0


def test_tile_layout_defaults_are_image_layout():
    """Backwards compatible: a TileLayout without the new fields gives build_prompt's text."""
    fields = dict(feature_token="<unk>", tokens_per_chunk=3, image_id_template="<image_id>{index}</image_id>",
                  overview_template="<image>{features}</image>", slice_template="<slice>{features}</slice>")
    template = ChatTemplate(default_system="You are a helpful assistant.")
    messages = [{"role": "user", "content": [IMAGE, "hi", IMAGE]}]
    grids = [[3, 2], None]
    old = build_prompt(messages, grids, ImageLayout(**fields), template)
    new = build_tiled_prompt(messages, grids, TileLayout(**fields), template)
    assert new.text == old.text and new.n_images == 2
    assert TileLayout.from_dict(TileLayout(**fields).to_dict()) == TileLayout(**fields)
