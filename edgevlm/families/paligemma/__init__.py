"""PaliGemma and PaliGemma 2: SigLIP → one Linear projector → Gemma (PG1) or Gemma 2 (PG2).

The reference is transformers' ``PaliGemmaForConditionalGeneration``. Attention is prefix-LM:
image tokens + ``<bos>`` + prefix + "\\n" attend to each other fully at prefill; generated tokens
are causal (techspec §3).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ...processing.config import ChatTemplate, ImageLayout, ProcessorConfig
from ..common.reference import BundleSpec

from ..common.hf_vlm import HFVisionLanguageModel, load_hf_reference, text_arch

NAME = "paligemma"
ATTENTION = "prefix_lm"


def matches(config: dict[str, Any]) -> bool:
    return config.get("model_type") == "paligemma"


def load_reference(ckpt: str | Path, dtype: torch.dtype = torch.float32) -> HFVisionLanguageModel:
    from transformers import PaliGemmaConfig, PaliGemmaForConditionalGeneration

    from ..common.reference import read_config

    return load_hf_reference(ckpt, PaliGemmaConfig, PaliGemmaForConditionalGeneration, NAME, ATTENTION,
                             text_arch(read_config(ckpt)), dtype)


def bundle_spec(config: dict[str, Any]) -> BundleSpec:
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


def random_config(version: int, vocab_size: int, image_token_id: int) -> dict[str, Any]:
    """A tiny PaliGemma (version 1: Gemma text) or PaliGemma 2 (version 2: Gemma 2 text) config."""
    text: dict[str, Any] = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                num_key_value_heads=1, head_dim=16, vocab_size=vocab_size,
                                max_position_embeddings=2048, hidden_activation="gelu_pytorch_tanh")
    if version == 1:
        text["model_type"] = "gemma"
    else:
        text.update(model_type="gemma2", num_key_value_heads=2, final_logit_softcapping=30.0,
                    attn_logit_softcapping=50.0, sliding_window=4096, query_pre_attn_scalar=16)
    return {
        "architectures": ["PaliGemmaForConditionalGeneration"], "model_type": "paligemma",
        "image_token_index": image_token_id, "projection_dim": 64, "hidden_size": 64,
        "vocab_size": vocab_size, "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0,
        "text_config": text,
        "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64,
                          "num_hidden_layers": 2, "num_attention_heads": 4, "image_size": 224, "patch_size": 14,
                          "projection_dim": 64, "vision_use_head": False},
    }
