"""Torch-free per-checkpoint data of a llava-hf checkpoint: image processor, prompt layout, chat template.

Read from config.json and the processor files (transformers 5's processor_config.json with the
image processor nested, or the older preprocessor_config.json beside it). What it gives:

=============================  ===========================  ===========================  ===========================
                               LLaVA 1.5 (llava-1.5-*-hf)   LLaVA-NeXT (v1.6-vicuna-hf)  LLaVA-OneVision (qwen2-hf)
=============================  ===========================  ===========================  ===========================
image processor                SquareConfig "crop" (CLIP);  AnyresConfig, 5 pinpoints,   AnyresConfig, 36 pinpoints,
                               "pad" if do_pad              max_tiles None               max_tiles 9 (anyres_max_9)
image tokens                   576, fixed                   plan.n_tokens per image      plan.n_tokens per image
                                                                                         (side^2 + 1 with >1 image)
ImageLayout                    "<image>" x n, marker "<image>", joiner "\\n" (images first, each "<image>\\n")
ChatTemplate                   bos "<s>"; "USER: {c} "; "ASSISTANT: {c} "; cue "ASSISTANT:"    ChatML, no default system
=============================  =================================================================  ===========================
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import CheckpointError
from ...processing.anyres import AnyresConfig
from ...processing.config import ChatTemplate, ImageLayout
from ...processing.square import SquareConfig

MODEL_TYPES = ("llava", "llava_next", "llava_onevision")
IMAGE_TOKEN = "<image>"


@dataclass
class LlavaSpec:
    model_type: str
    images: SquareConfig | AnyresConfig
    layout: ImageLayout
    template: ChatTemplate
    stop_tokens: list[str]
    fixed_tokens: int | None  # LLaVA 1.5: tokens of every image; None: per image, from its plan


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def processor_files(ckpt: str | Path) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(image processor config, processor config, chat template text) of a checkpoint directory."""
    ckpt = Path(ckpt)
    processor = _read_json(ckpt / "processor_config.json")
    images = processor.pop("image_processor", None) or _read_json(ckpt / "preprocessor_config.json")
    if not images:
        raise CheckpointError(f"{ckpt}: no image processor config (preprocessor_config.json or processor_config.json); "
                              "copy the processor files from the published checkpoint")
    template = processor.get("chat_template") or _read_json(ckpt / "chat_template.json").get("chat_template")
    if not template and (ckpt / "chat_template.jinja").is_file():
        template = (ckpt / "chat_template.jinja").read_text(encoding="utf-8")
    template = template or _read_json(ckpt / "tokenizer_config.json").get("chat_template") or ""
    return images, processor, template


def _side(size: dict[str, int]) -> int:
    return size.get("shortest_edge") or size["height"]


def image_config(config: dict[str, Any], images: dict[str, Any], processor: dict[str, Any]):
    """SquareConfig (LLaVA 1.5) or AnyresConfig (NeXT, OneVision) from the processor files."""
    common = {"mean": tuple(images["image_mean"]), "std": tuple(images["image_std"]),
              "rescale_factor": images.get("rescale_factor", 1 / 255),
              "resample": {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic"}[images.get("resample", 3)]}
    if config["model_type"] == "llava":
        crop = images.get("crop_size") or {}
        mode = "pad" if images.get("do_pad") else "crop"
        size = _side(images["size"])
        return SquareConfig(mode=mode, size=size, crop_size=crop.get("height", size) if mode == "crop" else size,
                            **common)
    crop = images.get("crop_size") or images["size"]
    aspect = processor.get("vision_aspect_ratio", config.get("vision_aspect_ratio", "anyres_max_9"))
    max_tiles = int(aspect.removeprefix("anyres_max_")) if config["model_type"] == "llava_onevision" else None
    return AnyresConfig(tile_size=_side(crop), patch_size=config["vision_config"]["patch_size"],
                        pinpoints=tuple(map(tuple, config["image_grid_pinpoints"])), max_tiles=max_tiles, **common)


def chat_template(template_text: str, config: dict[str, Any]) -> tuple[ChatTemplate, list[str]]:
    """Our ChatTemplate for the published template families, by their signature strings."""
    if "'ASSISTANT:'" in template_text:  # llava-1.5-hf, llava-v1.6-vicuna-hf
        template = ChatTemplate(system_template="{content} ", user_template="USER: {content} ",
                                assistant_template="ASSISTANT: {content} ", generation_prompt="ASSISTANT:",
                                bos="<s>", stop_strings=("</s>",))
        return template, ["</s>"]
    if "<|im_start|>" in template_text:  # llava-onevision-*-hf: ChatML without a default system turn
        template = ChatTemplate(system_template="<|im_start|>system\n{content}<|im_end|>\n",
                                user_template="<|im_start|>user\n{content}<|im_end|>\n",
                                assistant_template="<|im_start|>assistant\n{content}<|im_end|>\n",
                                generation_prompt="<|im_start|>assistant\n", stop_strings=("<|im_end|>",))
        return template, ["<|im_end|>", "<|endoftext|>"]
    found = re.search(r"\[INST\]|<\|start_header_id\|>", template_text)
    raise CheckpointError(f"{config.get('model_type')}: chat template {found.group(0) if found else 'unknown'} is not "
                          "one edgevlm knows for LLaVA (Vicuna USER:/ASSISTANT: or ChatML); use a vicuna or "
                          "onevision checkpoint")


def llava_spec(ckpt: str | Path) -> LlavaSpec:
    config = _read_json(Path(ckpt) / "config.json")  # not families.base.read_config: that module imports torch
    if not config:
        raise CheckpointError(f"{ckpt}: no config.json, so this is not a Hugging Face checkpoint directory")
    if config.get("model_type") not in MODEL_TYPES:
        raise CheckpointError(f"{ckpt}: model_type {config.get('model_type')!r} is not LLaVA ({', '.join(MODEL_TYPES)})")
    images, processor, template_text = processor_files(ckpt)
    image_cfg = image_config(config, images, processor)
    strategy = config.get("vision_feature_select_strategy", "default")
    fixed = None
    if isinstance(image_cfg, SquareConfig):
        vision = config["vision_config"]
        fixed = (image_cfg.output_size // vision["patch_size"]) ** 2
        if strategy == "full" and vision.get("model_type", "clip_vision_model") == "clip_vision_model":
            fixed += 1  # the CLS token is kept
    elif strategy != "full" and config["vision_config"].get("model_type") == "siglip_vision_model":
        raise CheckpointError(f"{ckpt}: strategy 'default' drops a CLS token SigLIP does not have; "
                              "the checkpoint's config is inconsistent")
    per_chunk = fixed or image_cfg.feature_side**2  # NeXT / OneVision: one tile's tokens (informational)
    layout = ImageLayout(feature_token=IMAGE_TOKEN, tokens_per_chunk=per_chunk, overview_template="{features}",
                         marker=IMAGE_TOKEN, auto_marker_joiner="\n", attention="causal")
    template, stops = chat_template(template_text, config)
    return LlavaSpec(config["model_type"], image_cfg, layout, template, stops, fixed)
