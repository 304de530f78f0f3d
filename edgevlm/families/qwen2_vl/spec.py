"""Qwen2-VL / Qwen2.5-VL as data (no torch): processor, prompt layout, chat template, stops, sampling.

Both versions share all of it: the native-resolution processor (edgevlm/processing/native_resolution.py)
with the checkpoint's own ``min_pixels`` / ``max_pixels``, one ``<|vision_start|><|image_pad|>...
<|vision_end|>`` run per image whose length comes from the image's plan, and ChatML turns with
the published default system message. Facts and file:line pointers: NOTES.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...processing.config import ChatTemplate, ImageLayout
from ...processing.native_resolution import NativeResolutionConfig
from ..contract import BundleSpec

NAME = "qwen2_vl"
MODEL_TYPES = {"qwen2_vl": "2", "qwen2_5_vl": "2.5"}  # config.json model_type -> version
# What the published chat template renders for each image part: it is also what users may write.
IMAGE_MARKER = "<|vision_start|><|image_pad|><|vision_end|>"
CHATML = ChatTemplate(default_system="You are a helpful assistant.", stop_strings=("<|im_end|>", "<|endoftext|>"))
SAMPLING_KEYS = ("temperature", "top_k", "top_p", "repetition_penalty")


def matches(config: dict[str, Any]) -> bool:
    return config.get("model_type") in MODEL_TYPES


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def processor_settings(ckpt: Path | None, config: dict[str, Any]) -> NativeResolutionConfig:
    """preprocessor_config.json's settings; without one, transformers' class defaults with the ViT's patch/merge."""
    data = _read_json(ckpt / "preprocessor_config.json") if ckpt is not None else {}
    if not data:
        vision = config.get("vision_config") or {}
        data = {"patch_size": vision.get("patch_size", 14), "merge_size": vision.get("spatial_merge_size", 2),
                "temporal_patch_size": vision.get("temporal_patch_size", 2)}
    return NativeResolutionConfig.from_preprocessor_config(data)


def recommended_sampling(ckpt: Path | None) -> dict[str, Any]:
    """The checkpoint's generation_config.json sampling (the published ones sample with top_k 1)."""
    data = _read_json(ckpt / "generation_config.json") if ckpt is not None else {}
    if not data.get("do_sample"):
        return {}
    return {k: data[k] for k in SAMPLING_KEYS if k in data}


def bundle_spec(ckpt: Path | None, config: dict[str, Any]) -> BundleSpec:
    layout = ImageLayout(feature_token="<|image_pad|>", tokens_per_chunk=0,  # per image, from its plan
                         overview_template="<|vision_start|>{features}<|vision_end|>", marker=IMAGE_MARKER,
                         auto_marker_joiner="")  # the template joins content parts without separators
    return BundleSpec(processor_settings(ckpt, config).processor_config(), layout, CHATML,
                      ["<|im_end|>", "<|endoftext|>"], recommended_sampling(ckpt))
