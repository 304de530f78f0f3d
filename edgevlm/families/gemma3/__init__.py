"""Gemma 3 vision-language: SigLIP → 4×4 average pool → RMSNorm → projection → Gemma 3 text.

The reference is transformers' ``Gemma3ForConditionalGeneration``. Attention is causal except that
the tokens of one image block attend to each other bidirectionally (``bidirectional_image``); text
layers alternate sliding-window and global attention.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ...processing.config import ChatTemplate, ImageLayout, ProcessorConfig
from ..common.reference import BundleSpec

from ..common.hf_vlm import HFVisionLanguageModel, load_hf_reference

NAME = "gemma3"
ATTENTION = "bidirectional_image"


def matches(config: dict[str, Any]) -> bool:
    return config.get("model_type") == "gemma3"


def load_reference(ckpt: str | Path, dtype: torch.dtype = torch.float32) -> HFVisionLanguageModel:
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    return load_hf_reference(ckpt, Gemma3Config, Gemma3ForConditionalGeneration, NAME, ATTENTION, "gemma3", dtype)


def bundle_spec(config: dict[str, Any]) -> BundleSpec:
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


def random_config(vocab_size: int, special_ids: dict[str, int], text_config: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
    """A tiny Gemma 3 config; ``text_config`` replaces the tiny text model (e.g. the real 270M)."""
    text = text_config or dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                               num_key_value_heads=1, head_dim=16, vocab_size=vocab_size, sliding_window=32,
                               max_position_embeddings=2048, query_pre_attn_scalar=16,
                               layer_types=["sliding_attention", "sliding_attention", "sliding_attention",
                                            "full_attention"])
    text = {**text, "model_type": "gemma3_text"}
    return {
        "architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
        "mm_tokens_per_image": 16, "boi_token_index": special_ids["boi"], "eoi_token_index": special_ids["eoi"],
        "image_token_index": special_ids["image"], "text_config": text,
        "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64,
                          "num_hidden_layers": 2, "num_attention_heads": 4, "image_size": 224, "patch_size": 14,
                          "vision_use_head": False},
    }
