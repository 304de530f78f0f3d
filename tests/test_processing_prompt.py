"""MiniCPM-V placeholder layout, chat templates and token layout against the reference processors.

Golden data (``tests/golden/processing/``), generated outside this repository by running the HF
remote-code processors (their code is not copied here):

* ``minicpmv_placeholders.json``: ``MiniCPMVImageProcessor.get_slice_image_placeholder`` of MiniCPM-V
  2.6 (GitHub ``404805854/minicpmv2.6-onnx`` @ 48804ee7110d544e367f808ff8f74c04048b78fb,
  ``image_processing_minicpmv.py``; ``image_feature_size=64``, with image ids 0 and 3 and without) and
  of the 2.5-era processor (``HwwwwwwwH/MiniCPM-V-2`` @ 84ce9b02a1725e27ecd3a7d820b7cad75a123d83,
  ``image_feature_size=96``) for 12 sizes x ``max_slice_nums`` 9, 4, 16.
* ``minicpmv26_prompts.json``: the 2.6 ``MiniCPMVProcessor._convert_images_texts_to_inputs``
  (``processing_minicpmv.py`` of the same commit) with the ``MiniCPMVTokenizerFast`` wrapper over
  ``minicpmv26_tokenizer.json`` (the tiny byte-level BPE of ``edgevlm.testing.tiny_tokenizer`` with
  the ChatML + MiniCPM-V special tokens, stored so the ids cannot drift), on chat texts built the
  way the reference ``chat()`` builds them (image parts -> ``(<image>./</image>)``, parts joined by
  "\\n", then the ChatML template with the default system message). Recorded: the chat text, the
  ``input_ids`` and the ``image_bound`` ranges.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgevlm.errors import PromptError
from edgevlm.processing.config import ChatTemplate, ImageLayout, ProcessorConfig
from edgevlm.processing.prompt import (
    IMAGE,
    PromptText,
    build_prompt,
    chunk_count,
    expand_images,
    image_placeholder,
    layout_tokens,
    message_turns,
    render_chat,
)
from edgevlm.processing.slicing import get_sliced_grid
from edgevlm.processing.tokenizer import Tokenizer

GOLDEN = Path(__file__).parent / "golden" / "processing"

# Example family configs (the family files own the real ones; see edgevlm/processing/config.py).
LAYOUT_26 = ImageLayout(
    feature_token="<unk>",
    tokens_per_chunk=64,
    image_id_template="<image_id>{index}</image_id>",
    overview_template="<image>{features}</image>",
    slice_template="<slice>{features}</slice>",
    row_separator="\n",
    marker="(<image>./</image>)",
    auto_marker_joiner="\n",
)
LAYOUT_25 = ImageLayout(
    feature_token="<unk>",
    tokens_per_chunk=96,
    image_id_template="",
    overview_template="<image>{features}</image>",
    slice_template="<image>{features}</image>",
    slices_open="<slice>",
    slices_close="</slice>",
    row_separator="\n",
    image_suffix="\n",
    marker="(<image>./</image>)",
    auto_marker_joiner="\n",
)
CHATML = ChatTemplate(default_system="You are a helpful assistant.", stop_strings=("<|im_end|>", "<|endoftext|>"))
LLAMA3 = ChatTemplate(
    system_template="<|start_header_id|>system<|end_header_id|>\n\n{content}<|eot_id|>",
    user_template="<|start_header_id|>user<|end_header_id|>\n\n{content}<|eot_id|>",
    assistant_template="<|start_header_id|>assistant<|end_header_id|>\n\n{content}<|eot_id|>",
    generation_prompt="<|start_header_id|>assistant<|end_header_id|>\n\n",
    bos="<|begin_of_text|>",
    strip_content="message",
    stop_strings=("<|eot_id|>",),
)

PLACEHOLDERS = json.loads((GOLDEN / "minicpmv_placeholders.json").read_text())["placeholders"]
PROMPTS = json.loads((GOLDEN / "minicpmv26_prompts.json").read_text())
TOKENIZER_26 = Tokenizer.from_file(GOLDEN / PROMPTS["tokenizer"])


@pytest.mark.parametrize("case", PLACEHOLDERS, ids=lambda c: f"{c['size'][0]}x{c['size'][1]}-m{c['max_slice_nums']}")
def test_placeholders_equal_the_reference(case):
    grid = get_sliced_grid(tuple(case["size"]), case["max_slice_nums"])
    assert image_placeholder(LAYOUT_26, grid, 0) == case["v26_id0"]
    assert image_placeholder(LAYOUT_26, grid, 3) == case["v26_id3"]
    assert image_placeholder(ImageLayout(**{**LAYOUT_26.to_dict(), "image_id_template": ""}), grid, 0) == case["v26_noid"]
    assert image_placeholder(LAYOUT_25, grid, 0) == case["v25"]


def _messages(raw):
    return [{"role": m["role"], "content": [IMAGE if p == "IMAGE" else p for p in m["content"]]} for m in raw]


@pytest.mark.parametrize("case", PROMPTS["cases"], ids=lambda c: c["name"])
def test_minicpmv26_prompt_ids_and_feature_positions_equal_the_reference(case):
    messages = _messages(case["messages"])
    grids = [get_sliced_grid(tuple(s), case["max_slice_nums"]) for s in case["sizes"]]
    assert grids == case["grids"]
    # the chat text over markers is the reference's
    assert render_chat(message_turns(messages, len(grids), LAYOUT_26, CHATML), CHATML) == case["chat_text"]
    prompt = build_prompt(messages, grids, LAYOUT_26, CHATML)
    layout = layout_tokens(TOKENIZER_26, prompt, LAYOUT_26, [chunk_count(g) for g in grids])
    assert layout.input_ids.dtype == np.int64 and layout.input_ids.tolist() == case["input_ids"]
    expected = [i for start, end in case["image_bound"] for i in range(start, end)]
    assert layout.image_positions.tolist() == expected
    assert len(case["image_bound"]) == sum(chunk_count(g) for g in grids) == len(case["tgt_sizes"])
    assert (layout.block_ids == -1).all() and layout.prefix_length == 0  # MiniCPM-V is causal


def test_markers_are_inserted_when_the_text_has_none():
    grids = [[2, 1]]
    with_marker = build_prompt([{"role": "user", "content": [IMAGE, "Hi"]}], grids, LAYOUT_26, CHATML)
    without = build_prompt("Hi", grids, LAYOUT_26, CHATML)
    assert with_marker.text == without.text
    assert "(<image>./</image>)" not in without.text and without.text.count("<slice>") == 2


def test_marker_count_mismatch_is_a_prompt_error():
    with pytest.raises(PromptError, match="2 image marker"):
        build_prompt("(<image>./</image>)(<image>./</image>) two?", [None], LAYOUT_26, CHATML)
    with pytest.raises(PromptError):
        expand_images("no markers here", [None], LAYOUT_26)


def test_feature_token_typed_by_the_user_is_caught():
    prompt = build_prompt("what is <unk>?", [None], LAYOUT_26, CHATML)
    with pytest.raises(PromptError, match="<unk>"):
        layout_tokens(TOKENIZER_26, prompt, LAYOUT_26, [1])


@pytest.fixture(scope="module")
def tiny_minicpmv(tmp_path_factory):
    tiny = pytest.importorskip("edgevlm.families.tiny")
    root = tmp_path_factory.mktemp("tiny_minicpmv")
    return {name: tiny.make_tiny(name, root / name) for name in ("minicpmv-2.5", "minicpmv-2.6")}


CONVERSATIONS = [
    [{"role": "user", "content": "  What is in the image?  "}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Next"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "(<image>./</image>)\nWhat?"}],
]


@pytest.mark.parametrize("conversation", CONVERSATIONS)
@pytest.mark.parametrize("name, template", [("minicpmv-2.5", LLAMA3), ("minicpmv-2.6", CHATML)])
def test_chat_templates_render_like_the_checkpoints_jinja(tiny_minicpmv, name, template, conversation):
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(tiny_minicpmv[name]))
    expected = hf.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    turns = [(m["role"], m["content"]) for m in conversation]
    assert render_chat(turns, template) == expected


def test_minicpmv25_layout_on_the_tiny_tokenizer(tiny_minicpmv):
    tokenizer = Tokenizer.from_file(tiny_minicpmv["minicpmv-2.5"] / "tokenizer.json")
    grids = [[3, 2]]
    prompt = build_prompt("Read it.", grids, LAYOUT_25, LLAMA3)
    assert prompt.text.startswith("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n<image>")
    layout = layout_tokens(tokenizer, prompt, LAYOUT_25, [7])
    ids = layout.input_ids
    unk, open_image, close_image = (tokenizer.token_to_id(t) for t in ("<unk>", "<image>", "</image>"))
    # the 2.5 reference finds features between each <image> and </image> token
    starts = np.flatnonzero(ids == open_image) + 1
    ends = np.flatnonzero(ids == close_image)
    assert len(starts) == 7 and layout.image_positions.tolist() == [i for s, e in zip(starts, ends) for i in range(s, e)]
    assert (ids[layout.image_positions] == unk).all() and len(layout.image_positions) == 7 * 96


def test_configs_round_trip_through_json():
    for obj in (LAYOUT_25, LAYOUT_26, CHATML, LLAMA3, ProcessorConfig(kind="fixed", image_size=224, resample="bilinear")):
        data = json.loads(json.dumps(obj.to_dict()))
        assert type(obj).from_dict(data) == obj
    with pytest.raises(ValueError, match="unknown keys"):
        ImageLayout.from_dict({"feature_tokn": "<unk>"})


def test_prompt_text_alone_lays_out_without_images():
    layout = layout_tokens(TOKENIZER_26, PromptText("<|im_start|>user\nhi<|im_end|>\n"), LAYOUT_26)
    assert layout.image_positions.size == 0 and layout.input_ids[0] == TOKENIZER_26.token_to_id("<|im_start|>")
