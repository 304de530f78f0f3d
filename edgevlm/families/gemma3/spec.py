"""Gemma 3 vision-language: SigLIP → 4×4 average pool → RMSNorm → projection → Gemma 3 text.

The reference is transformers' ``Gemma3ForConditionalGeneration``. Attention is causal except that
the tokens of one image block attend to each other bidirectionally (``bidirectional_image``); text
layers alternate sliding-window and global attention. This file is the family as data (no torch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...processing.config import ChatTemplate, ImageLayout, ProcessorConfig
from ..contract import BundleSpec

NAME = "gemma3"
TINY_NAMES = ("gemma3",)  # make_tiny names (tiny.py)


def matches(config: dict[str, Any]) -> bool:
    return config.get("model_type") == "gemma3"


def bundle_spec(ckpt: Path | None, config: dict[str, Any]) -> BundleSpec:
    """Gemma chat turns; each image is a bidirectional ``<start_of_image>`` block of soft tokens."""
    vision = config["vision_config"]
    processor = ProcessorConfig(kind="fixed", image_size=vision.get("image_size", 896),
                                patch_size=vision.get("patch_size", 14), resample="bilinear")
    layout = ImageLayout(feature_token="<image_soft_token>", tokens_per_chunk=config.get("mm_tokens_per_image", 256),
                         overview_template="\n\n<start_of_image>{features}<end_of_image>\n\n",
                         marker="<start_of_image>", auto_marker_joiner="", attention="image_blocks")
    template = ChatTemplate(user_template="<start_of_turn>user\n{content}<end_of_turn>\n",
                            assistant_template="<start_of_turn>model\n{content}<end_of_turn>\n",
                            generation_prompt="<start_of_turn>model\n", system_mode="first_user", bos="<bos>",
                            strip_content="parts", stop_strings=("<end_of_turn>", "<eos>"))
    return BundleSpec(processor, layout, template, ["<end_of_turn>", "<eos>"])
