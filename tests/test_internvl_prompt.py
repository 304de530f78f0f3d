"""InternVL prompt layout: our expanded text + tokenizer.json ids equal transformers' InternVLProcessor.

The reference is the tiny checkpoint's own ``AutoProcessor`` (``InternVLProcessor``, chat template from
the checkpoint). Ours: ``aspect_tiles.plan_aspect_tiles``, ``tiled_prompt.build_tiled_prompt`` with
families/internvl/layout.py, ``Tokenizer`` over tokenizer.json, ``layout_tokens``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgevlm.families.internvl import layout as family
from edgevlm.processing.aspect_tiles import plan_aspect_tiles, preprocess_aspect_tiles
from edgevlm.processing.prompt import IMAGE, layout_tokens
from edgevlm.processing.tiled_prompt import build_tiled_prompt
from edgevlm.processing.tokenizer import Tokenizer
from test_idefics3_prompt import hf_messages
from tiles_reference import hf_processor, synthetic_image

pytest.importorskip("transformers")

CONVERSATIONS = {
    "image_first": [{"role": "user", "content": [IMAGE, "What is in the image?"]}],
    "two_images": [{"role": "user", "content": [IMAGE, IMAGE, "Compare them."]}],
    "multi_turn": [{"role": "system", "content": "You are brief."},
                   {"role": "user", "content": [IMAGE, "What is it?"]},
                   {"role": "assistant", "content": "A cat."},
                   {"role": "user", "content": "And the colour?"}],
}
SIZES = [(150, 100), (1, 10000), (112, 112), (40, 30), (1000, 800), (300, 112)]


def _hf(messages):
    return [m if isinstance(m["content"], str) else hf_messages([m])[0] for m in messages]


@pytest.mark.parametrize("conversation", sorted(CONVERSATIONS))
def test_input_ids_equal_the_processor(tiny, conversation):
    ckpt = tiny("internvl")
    processor = hf_processor(ckpt)
    config = json.loads((ckpt / "config.json").read_text())
    args = family.tiling(ckpt)
    layout = family.image_layout(family.tokens_per_tile(config))
    tokenizer = Tokenizer.from_file(ckpt / "tokenizer.json")
    messages = CONVERSATIONS[conversation]
    n_images = sum(p is IMAGE for m in messages if not isinstance(m["content"], str) for p in m["content"])
    for offset in range(0, len(SIZES), 2):
        images = [synthetic_image(*SIZES[(offset + k) % len(SIZES)]) for k in range(n_images)]
        text = processor.apply_chat_template(_hf(messages), add_generation_prompt=True)
        ref = processor(text=text, images=images, return_tensors="np")
        plans = [plan_aspect_tiles(im.size, args["tile"], args["min_tiles"], args["max_tiles"]) for im in images]
        prompt = build_tiled_prompt(messages, [family.grid_of(p.cols, p.rows) for p in plans], layout,
                                    family.chat_template())
        ours = layout_tokens(tokenizer, prompt, layout, [p.n_tiles for p in plans])
        assert ours.input_ids.tolist() == ref["input_ids"][0].tolist(), (conversation, offset)
        pixels = np.concatenate([preprocess_aspect_tiles(im, args["tile"], args["mean"], args["std"],
                                                         args["min_tiles"], args["max_tiles"]).pixel_values
                                 for im in images])
        assert float(np.abs(ref["pixel_values"] - pixels).max()) == 0.0
