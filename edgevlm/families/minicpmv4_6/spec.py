"""MiniCPM-V 4.6 / 4.7 as data (no torch): processor, prompt layout, chat template, downsample modes.

Facts (pointers into transformers 5.x ``models/minicpmv4_6`` and ``minicpmv4_7``: NOTES.md):
- slicing is LLaVA-UHD with every size aligned to ``patch * merge`` pixels (56 for "16x", 28 for
  "4x"), and a chunk of h x w patches gives h*w/16 ("16x") or h*w/4 ("4x") feature rows, so the
  processor kind is ``slice_merge`` (edgevlm/processing/slice_merge.py) with ``patches_per_token``;
- the placeholder is ``<|image_pad|>``, laid out as 2.6's: ``<image_id>N</image_id><image>..</image>``
  then one ``<slice>..</slice>`` per slice, rows joined by "\\n";
- the chat template is Qwen3.5's ChatML; the instruct generation prompt closes an empty think block.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...errors import CheckpointError
from ...processing.config import ChatTemplate, ImageLayout, ProcessorConfig
from ..contract import BundleSpec

NAME = "minicpmv4_6"
MODEL_TYPES = ("minicpmv4_6", "minicpmv4_7")
DOWNSAMPLE_MODES = {"16x": 16, "4x": 4}  # mode -> vision patches per feature row (a 4x4 or 2x2 merge)

CHAT = ChatTemplate(generation_prompt="<|im_start|>assistant\n<think>\n\n</think>\n\n",
                    stop_strings=("<|im_end|>", "<|endoftext|>"))


def matches(config: dict[str, Any]) -> bool:
    return config.get("model_type") in MODEL_TYPES


def check_layer_types(config: dict[str, Any]) -> None:
    """Refuse a text model whose ``layer_types`` names a kind edgevlm cannot export, before anything loads it
    (transformers builds every kind but linear attention as full attention, or refuses with its own error)."""
    from ...manifest.schema import LAYER_TYPES

    for index, kind in enumerate((config.get("text_config") or {}).get("layer_types") or ()):
        if kind not in LAYER_TYPES:
            raise CheckpointError(f"config.json text_config.layer_types[{index}] is {kind!r}, a layer kind edgevlm "
                                  f"cannot export (it knows {', '.join(LAYER_TYPES)}). Check the checkpoint's "
                                  "config.json, or upgrade edgevlm.")


def downsample_mode(config: dict[str, Any]) -> str:
    mode = config.get("downsample_mode", "16x")
    if mode not in DOWNSAMPLE_MODES:
        raise CheckpointError(f"config.json downsample_mode {mode!r} is not one of {', '.join(DOWNSAMPLE_MODES)}; "
                              "set it to \"16x\" (fewer tokens per slice) or \"4x\".")
    return mode


def merge_side(mode: str) -> int:
    """Patches merged per side into one feature row: 4 ("16x") or 2 ("4x")."""
    return 4 if mode == "16x" else 2


def _preprocessor(ckpt: Path | None) -> dict[str, Any]:
    path = None if ckpt is None else Path(ckpt) / "preprocessor_config.json"
    return json.loads(path.read_text(encoding="utf-8")) if path is not None and path.is_file() else {}


def _sampling(ckpt: Path | None) -> dict[str, Any]:
    """The checkpoint's recommended sampling (generation_config.json), where it sets one."""
    path = None if ckpt is None else Path(ckpt) / "generation_config.json"
    data = json.loads(path.read_text(encoding="utf-8")) if path is not None and path.is_file() else {}
    return {k: data[k] for k in ("temperature", "top_p", "top_k", "repetition_penalty") if k in data}


def bundle_spec(ckpt: Path | None, config: dict[str, Any]) -> BundleSpec:
    check_layer_types(config)
    mode = downsample_mode(config)
    pre = _preprocessor(ckpt)
    patch = int(pre.get("patch_size", config.get("vision_config", {}).get("patch_size", 14)))
    scale = int(pre.get("scale_resolution", config.get("image_size", 448)))
    processor = ProcessorConfig(kind="slice_merge", image_size=scale, patch_size=patch,
                                mean=tuple(pre.get("image_mean", (0.5, 0.5, 0.5))),
                                std=tuple(pre.get("image_std", (0.5, 0.5, 0.5))),
                                max_slice_nums=int(pre.get("max_slice_nums", 9)), scale_resolution=scale,
                                never_split=not pre.get("slice_mode", True), resize_align=patch * merge_side(mode),
                                options={"patches_per_token": DOWNSAMPLE_MODES[mode], "downsample_mode": mode})
    use_id = pre.get("use_image_id", True)
    layout = ImageLayout(feature_token="<|image_pad|>", tokens_per_chunk=(scale // patch) ** 2 // DOWNSAMPLE_MODES[mode],
                         image_id_template="<image_id>{index}</image_id>" if use_id else "",
                         marker="<|image_pad|>")
    return BundleSpec(processor, layout, CHAT, ["<|im_end|>", "<|endoftext|>"], _sampling(ckpt))
