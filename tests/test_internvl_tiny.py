"""The tiny InternVL checkpoint's processor files are the published ones (what AutoProcessor resolves)."""

from __future__ import annotations

import json

import pytest

from tiles_reference import hf_processor

pytest.importorskip("transformers")


def test_processor_resolves_like_the_published_checkpoint(tiny):
    ckpt = tiny("internvl")
    processor = hf_processor(ckpt)
    assert type(processor).__name__ == "InternVLProcessor"
    assert type(processor.image_processor).__name__ == "GotOcr2ImageProcessorPil"  # no torchvision: Pillow
    assert processor.image_seq_length == 16
    assert (processor.start_image_token, processor.end_image_token, processor.image_token) == (
        "<img>", "</img>", "<IMG_CONTEXT>")
    config = json.loads((ckpt / "config.json").read_text())
    assert config["image_token_id"] == processor.image_token_id
