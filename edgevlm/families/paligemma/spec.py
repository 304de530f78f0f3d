"""PaliGemma and PaliGemma 2: SigLIP → one Linear projector → Gemma (PG1) or Gemma 2 (PG2).

The reference is transformers' ``PaliGemmaForConditionalGeneration``. Attention is prefix-LM:
image tokens + ``<bos>`` + prefix + "\\n" attend to each other fully at prefill; generated tokens
are causal (techspec §3). This file is the family as data (no torch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...processing.config import ChatTemplate, ImageLayout, ProcessorConfig
from ..contract import BundleSpec

NAME = "paligemma"
TINY_NAMES = ("paligemma", "paligemma2")  # make_tiny names (tiny.py)


def matches(config: dict[str, Any]) -> bool:
    return config.get("model_type") == "paligemma"


def bundle_spec(ckpt: Path | None, config: dict[str, Any]) -> BundleSpec:
    """No chat template: ``<image>``×N + ``<bos>`` + prefix + "\n"; the prompt is one bidirectional block."""
    vision = config["vision_config"]
    size, patch = vision.get("image_size", 224), vision.get("patch_size", 14)
    processor = ProcessorConfig(kind="fixed", image_size=size, patch_size=patch, resample="bicubic")
    layout = ImageLayout(feature_token="<image>", tokens_per_chunk=(size // patch) ** 2, overview_template="{features}",
                         marker="<image>", auto_marker_joiner="", after_last_image="<bos>", attention="prefix")
    template = ChatTemplate(system_template="{content}\n", user_template="{content}\n",
                            assistant_template="{content}\n", generation_prompt="", eos="<eos>",
                            stop_strings=("<eos>",))
    return BundleSpec(processor, layout, template, ["<eos>"])
