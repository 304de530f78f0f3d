"""M-RoPE position ids (edgevlm.processing.mrope) and prompt token ids against transformers.

The reference is transformers' own ``get_rope_index`` of the tiny Qwen2-VL / Qwen2.5-VL models on
the input ids, ``mm_token_type_ids`` and grids that transformers' own processor makes from the
published chat template. Our token ids come from tokenizer.json with each ``<|image_pad|>`` expanded
to the count our image plan gives.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from qwen2vl_hf import chat, hf_model, hf_processor, synthetic_image  # noqa: E402

from edgevlm.errors import PromptError  # noqa: E402
from edgevlm.processing.mrope import (  # noqa: E402
    image_position_ids,
    mrope_positions,
    stream_of_frequency,
    text_positions,
)
from edgevlm.processing.native_resolution import NativeResolutionConfig, plan_native_resolution  # noqa: E402
from edgevlm.processing.tokenizer import Tokenizer  # noqa: E402

pytest.importorskip("transformers")
NAMES = ["qwen2-vl", "qwen2.5-vl"]
BUDGET = NativeResolutionConfig(max_pixels=28 * 28 * 256)  # per-request budget: keeps the prompts short
PROMPTS = {  # name: (messages, number of images)
    "no image": (chat(("user", ["Describe the picture."])), 0),
    "one image": (chat(("user", ["IMAGE", "What is in the image?"])), 1),
    "two images": (chat(("user", ["Compare", "IMAGE", "with", "IMAGE", "please."])), 2),
}
SIZES = [(300, 200), (123, 457)]  # different grids: (1, 14, 22) and (1, 32, 8) under BUDGET


@pytest.fixture(scope="module")
def models(tiny):
    return {name: (hf_processor(tiny(name)), hf_model(tiny(name)), tiny(name)) for name in NAMES}


def _processor_inputs(processor, messages, images):
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    size = {"shortest_edge": BUDGET.min_pixels, "longest_edge": BUDGET.max_pixels}
    return text, processor(text=[text], images=images or None, images_kwargs={"size": size}, return_tensors="pt")


def _our_ids(ckpt, text: str, images) -> tuple[np.ndarray, list]:
    """Token ids with each image's placeholder expanded by our plan, and the plans' grids."""
    plans = [plan_native_resolution(image.size, BUDGET) for image in images]
    pieces = text.split("<|image_pad|>")
    assert len(pieces) == len(plans) + 1
    expanded = pieces[0] + "".join("<|image_pad|>" * plan.n_tokens + piece for plan, piece in zip(plans, pieces[1:]))
    return Tokenizer.from_file(ckpt / "tokenizer.json").encode(expanded), [plan.grid_thw for plan in plans]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("prompt", list(PROMPTS))
def test_positions_and_ids_equal_transformers(models, name, prompt):
    processor, model, ckpt = models[name]
    messages, n_images = PROMPTS[prompt]
    images = [synthetic_image(w, h, i) for i, (w, h) in enumerate(SIZES[:n_images])]
    text, inputs = _processor_inputs(processor, messages, images)
    ids, grids = _our_ids(ckpt, text, images)
    assert ids.tolist() == inputs["input_ids"][0].tolist()
    if images:
        assert [list(g) for g in grids] == inputs["image_grid_thw"].tolist()
    want, delta = model.model.get_rope_index(inputs["input_ids"], inputs["mm_token_type_ids"],
                                             inputs.get("image_grid_thw"))
    ours = mrope_positions(ids, model.config.image_token_id, grids, 2)
    assert np.array_equal(ours.position_ids, want[:, 0].numpy())
    assert ours.rope_delta == int(delta) and ours.next_position == int(want.max()) + 1
    if not images:
        assert np.array_equal(ours.position_ids, text_positions(len(ids), 0))


@pytest.mark.parametrize("name", NAMES)
def test_two_turn_chat_in_two_pieces_equals_one_piece(models, name):
    processor, model, ckpt = models[name]
    image_a, image_b = synthetic_image(*SIZES[0], 0), synthetic_image(*SIZES[1], 1)
    messages = chat(("user", ["IMAGE", "What is this?"]), ("assistant", ["A cat on a red chair."]),
                    ("user", ["And this one?", "IMAGE"]))
    text, inputs = _processor_inputs(processor, messages, [image_a, image_b])
    ids = inputs["input_ids"][0].numpy()
    grids = inputs["image_grid_thw"].numpy()
    want, _ = model.model.get_rope_index(inputs["input_ids"], inputs["mm_token_type_ids"], inputs["image_grid_thw"])
    # piece 1: the first turn and the answer (what a chat has in its cache); piece 2: the second turn
    im_start = Tokenizer.from_file(ckpt / "tokenizer.json").token_to_id("<|im_start|>")
    cut = int(np.flatnonzero(ids == im_start)[3])  # system, user, assistant, *user*
    image_id = model.config.image_token_id
    first = mrope_positions(ids[:cut], image_id, grids[:1], 2)
    second = mrope_positions(ids[cut:], image_id, grids[1:], 2, start=first.next_position)
    pieces = np.concatenate([first.position_ids, second.position_ids], axis=1)
    whole = mrope_positions(ids, image_id, grids, 2)
    assert np.array_equal(pieces, whole.position_ids) and np.array_equal(whole.position_ids, want[:, 0].numpy())
    assert second.next_position == whole.next_position


def test_image_positions_by_hand():
    # grid 4x6 patches -> 2x3 merged tokens, starting at 5: rows 5..6, cols 5..7; next position 5 + 3
    ids = image_position_ids((1, 4, 6), 2, 5)
    assert ids.tolist() == [[5] * 6, [5, 5, 5, 6, 6, 6], [5, 6, 7, 5, 6, 7]]
    out = mrope_positions(np.array([1, 9, 9, 9, 9, 9, 9, 2]), 9, [(1, 4, 6)], 2, start=4)
    assert out.position_ids[:, 0].tolist() == [4, 4, 4] and out.position_ids[:, -1].tolist() == [8, 8, 8]
    assert out.next_position == 9


def test_back_to_back_images_are_split_by_their_counts():
    ids = np.array([1] + [9] * 4 + [9] * 6 + [2])  # a 2x2-token image then a 2x3-token image, no separator
    out = mrope_positions(ids, 9, [(1, 4, 4), (1, 4, 6)], 2)
    assert out.position_ids[1, 1:5].tolist() == [1, 1, 2, 2] and out.position_ids[2, 5:11].tolist() == [3, 4, 5] * 2
    assert out.position_ids[:, -1].tolist() == [6, 6, 6] and out.next_position == 7


def test_placeholder_count_mismatch_is_a_prompt_error():
    with pytest.raises(PromptError, match="3 image placeholder tokens but its 1 image"):
        mrope_positions(np.array([1, 9, 9, 9, 2]), 9, [(1, 4, 4)], 2)
    with pytest.raises(PromptError, match="shorter than its 4 tokens"):
        mrope_positions(np.array([1, 9, 9, 2, 9, 9]), 9, [(1, 4, 4)], 2)


@pytest.mark.parametrize("model,interleaved", [("qwen2_vl", False), ("qwen3_vl", True)])
def test_frequency_streams_equal_transformers_rotary(model, interleaved):
    """The decoders gather each rotary frequency's position from stream_of_frequency(section): contiguous
    sections for Qwen2-VL / 2.5, interleaved ones for Qwen3-VL (which edgevlm does not export yet: the table
    is what would carry over), against transformers' own recomposition of the three streams."""
    import torch

    if model == "qwen2_vl":
        from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VLRotaryEmbedding as Rotary
        from transformers.models.qwen2_vl.configuration_qwen2_vl import Qwen2VLTextConfig as Config

        section = [16, 24, 24]
        config = Config(hidden_size=2048, num_attention_heads=16, rope_scaling={"type": "mrope", "mrope_section": section})
    else:
        from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLTextRotaryEmbedding as Rotary
        from transformers.models.qwen3_vl.configuration_qwen3_vl import Qwen3VLTextConfig as Config

        section = [24, 20, 20]
        config = Config(hidden_size=2048, num_attention_heads=16, head_dim=128,
                        rope_parameters={"rope_type": "default", "rope_theta": 5e6, "mrope_section": section,
                                         "mrope_interleaved": True})
    rotary = Rotary(config)
    freq = torch.arange(3)[:, None, None, None] * 1000.0 + torch.arange(64)  # [3, 1, 1, 64]: stream s, frequency j
    picked = rotary.recomposition_frequencies(freq.clone())[..., :64].reshape(-1)  # [64]
    streams = stream_of_frequency(section, interleaved)
    assert picked.tolist() == [1000.0 * s + j for j, s in enumerate(streams.tolist())]
    assert interleaved == (streams[:3].tolist() == [0, 1, 2])
