"""LLaVA 1.5 / NeXT / OneVision as data (no torch): image processor, prompt layout, chat template.

Read from config.json and the checkpoint's processor files (transformers 5's processor_config.json
with the image processor nested, or the older preprocessor_config.json beside it):

==================  =============================  =============================  ===============================
                    LLaVA 1.5 (llava-1.5-*-hf)     LLaVA-NeXT (v1.6-vicuna-hf)    LLaVA-OneVision (qwen2-*-hf)
==================  =============================  =============================  ===============================
processor kind      "square": "crop" (CLIP's       "anyres": 5 pinpoints          "anyres_max": 36 pinpoints,
                    processor), "pad" if do_pad                                   max_tiles 9 (anyres_max_9)
image tokens        576, fixed (one tile)          per image, from its plan       per image, from its plan
                                                                                  (tiled only when alone)
ImageLayout         "<image>" x n, marker "<image>", joiner "\\n" (images first, each "<image>\\n")
ChatTemplate        "USER: {c} " / "ASSISTANT: {c} ", cue "ASSISTANT:", bos "<s>"  ChatML, no default system
==================  ===============================================================  ===============================

Without the processor files (``ckpt`` None) the settings follow config.json and the published defaults.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ...errors import CheckpointError
from ...processing.config import ChatTemplate, ImageLayout, ProcessorConfig
from ..contract import BundleSpec

NAME = "llava"
TINY_NAMES = ("llava", "llava-next", "llava-onevision")  # tiny.py writes them
MODEL_TYPES = ("llava", "llava_next", "llava_onevision")
IMAGE_TOKEN = "<image>"
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic"}  # PIL enum values in the processor files

VICUNA_CHAT = ChatTemplate(system_template="{content} ", user_template="USER: {content} ",
                           assistant_template="ASSISTANT: {content} ", generation_prompt="ASSISTANT:", bos="<s>",
                           stop_strings=("</s>",))
CHATML_CHAT = ChatTemplate(stop_strings=("<|im_end|>",))  # ChatML, no default system turn (the defaults here)


def matches(config: dict[str, Any]) -> bool:
    return config.get("model_type") in MODEL_TYPES


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def processor_files(ckpt: Path | None) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(image processor config, processor config, chat template text) of a checkpoint directory."""
    if ckpt is None:
        return {}, {}, ""
    ckpt = Path(ckpt)
    processor = _read_json(ckpt / "processor_config.json")
    images = processor.pop("image_processor", None) or _read_json(ckpt / "preprocessor_config.json")
    template = processor.get("chat_template") or _read_json(ckpt / "chat_template.json").get("chat_template")
    if not template and (ckpt / "chat_template.jinja").is_file():
        template = (ckpt / "chat_template.jinja").read_text(encoding="utf-8")
    template = template or _read_json(ckpt / "tokenizer_config.json").get("chat_template") or ""
    return images, processor, template


def _side(size: dict[str, int] | None, default: int) -> int:
    size = size or {}
    return int(size.get("shortest_edge") or size.get("height") or default)


def processor_config(config: dict[str, Any], images: dict[str, Any], processor: dict[str, Any]) -> ProcessorConfig:
    """The manifest's processor: kind "square" (1.5), "anyres" (NeXT) or "anyres_max" (OneVision)."""
    vision = config["vision_config"]
    siglip = vision.get("model_type") == "siglip_vision_model"
    tile = int(vision.get("image_size", 384 if siglip else 336))
    common = dict(patch_size=int(vision.get("patch_size", 14)),
                  mean=tuple(images.get("image_mean", [0.5] * 3 if siglip else CLIP_MEAN)),
                  std=tuple(images.get("image_std", [0.5] * 3 if siglip else CLIP_STD)),
                  rescale_factor=float(images.get("rescale_factor", 1 / 255)),
                  resample=RESAMPLE[int(images.get("resample", 3))])
    kind = config["model_type"]
    if kind == "llava":
        crop = _side(images.get("crop_size"), tile)
        if images.get("do_pad"):
            return ProcessorConfig(kind="square", image_size=_side(images.get("size"), tile), options={"mode": "pad"},
                                   **common)
        return ProcessorConfig(kind="square", image_size=crop, **common,
                               options={"mode": "crop", "shortest_edge": _side(images.get("size"), crop)})
    tile = _side(images.get("crop_size") or images.get("size"), tile)
    pinpoints = [[int(h), int(w)] for h, w in config["image_grid_pinpoints"]]
    if kind == "llava_next":
        return ProcessorConfig(kind="anyres", image_size=tile, options={"pinpoints": pinpoints}, **common)
    aspect = processor.get("vision_aspect_ratio") or config.get("vision_aspect_ratio", "anyres_max_9")
    found = re.fullmatch(r"anyres_max_(\d+)", str(aspect))
    if not found:
        raise CheckpointError(f"vision_aspect_ratio {aspect!r} is not one edgevlm runs for LLaVA-OneVision "
                              "(anyres_max_N); use a published llava-onevision checkpoint")
    return ProcessorConfig(kind="anyres_max", image_size=tile, **common,
                           options={"pinpoints": pinpoints, "max_tiles": int(found.group(1))})


def chat_template(template_text: str, config: dict[str, Any]) -> tuple[ChatTemplate, list[str]]:
    """Our ChatTemplate for the published template families, by their signature strings (config.json's
    text model when the checkpoint has no template: Llama -> Vicuna, Qwen2 -> ChatML)."""
    if not template_text:
        text_type = (config.get("text_config") or {}).get("model_type", "llama")
        template_text = "<|im_start|>" if text_type == "qwen2" else "'ASSISTANT:'"
    if "'ASSISTANT:'" in template_text:  # llava-1.5-hf, llava-v1.6-vicuna-hf
        return VICUNA_CHAT, ["</s>"]
    if "<|im_start|>" in template_text:  # llava-onevision-*-hf
        return CHATML_CHAT, ["<|im_end|>", "<|endoftext|>"]
    found = re.search(r"\[INST\]|<\|start_header_id\|>", template_text)
    raise CheckpointError(f"{config.get('model_type')}: chat template {found.group(0) if found else 'unknown'} is not "
                          "one edgevlm knows for LLaVA (Vicuna USER:/ASSISTANT: or ChatML); use a vicuna or "
                          "onevision checkpoint")


def tokens_per_tile(config: dict[str, Any]) -> int:
    """Feature rows the vision part gives per tile: (side / patch)^2, plus CLS when strategy "full" keeps it."""
    vision = config["vision_config"]
    siglip = vision.get("model_type") == "siglip_vision_model"
    side = int(vision.get("image_size", 384 if siglip else 336)) // int(vision.get("patch_size", 14))
    strategy = config.get("vision_feature_select_strategy", "default")
    if strategy == "default" and siglip:
        raise CheckpointError("vision_feature_select_strategy 'default' drops a CLS token SigLIP does not have; "
                              "the checkpoint's config is inconsistent")
    return side**2 + (1 if strategy == "full" and not siglip else 0)


def bundle_spec(ckpt: Path | None, config: dict[str, Any]) -> BundleSpec:
    images, processor_cfg, template_text = processor_files(ckpt)
    processor = processor_config(config, images, processor_cfg)
    if processor.kind != "square" and tokens_per_tile(config) != (processor.image_size // processor.patch_size) ** 2:
        raise CheckpointError("anyres needs the CLS token dropped (strategy 'default') or absent (SigLIP)")
    layout = ImageLayout(feature_token=IMAGE_TOKEN, tokens_per_chunk=tokens_per_tile(config),
                         overview_template="{features}", slice_template="{features}", row_separator="",
                         marker=IMAGE_TOKEN, auto_marker_joiner="\n", attention="causal")
    template, stops = chat_template(template_text, config)
    return BundleSpec(processor, layout, template, stops)
