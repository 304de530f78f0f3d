"""InternVL 2.5 / 3 ("-hf" layout) as data (no torch): tiling settings, prompt layout and chat turns.

Mirrors transformers' ``InternVLProcessor`` (``crop_to_patches=True``; ``replace_image_token``:
``<img>`` + ``<IMG_CONTEXT>`` x tokens-per-tile x tiles + ``</img>``) and the published -hf chat template
(ChatML, no default system turn, an image part written as ``<IMG_CONTEXT>\\n``). NOTES.md has the map.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...processing.config import ChatTemplate, ImageLayout, ProcessorConfig
from ..contract import BundleSpec

NAME = "internvl"
EOS = ["<|im_end|>"]
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def matches(config: dict[str, Any]) -> bool:
    return config.get("model_type") == "internvl"


def _first(value: Any) -> int:
    return int(value[0] if isinstance(value, (list, tuple)) else value)


def tokens_per_tile(config: dict[str, Any]) -> int:
    """(tile / patch)^2 * downsample_ratio^2 (256 for InternVL 2.5 / 3)."""
    vision = config["vision_config"]
    return int((_first(vision["image_size"]) // _first(vision["patch_size"])) ** 2
               * config.get("downsample_ratio", 0.5) ** 2)


def processor_config(ckpt: Path | None, config: dict[str, Any]) -> ProcessorConfig:
    """Got-OCR-2's tiler as InternVLProcessor runs it (crop_to_patches on, whatever the file says; Pillow BICUBIC)."""
    path = None if ckpt is None else Path(ckpt) / "preprocessor_config.json"
    data = json.loads(path.read_text(encoding="utf-8")) if path is not None and path.is_file() else {}
    data = data.get("image_processor", data)
    vision = config["vision_config"]
    tile = int(data.get("size", {}).get("height", _first(vision["image_size"])))
    return ProcessorConfig(kind="aspect_tiles", image_size=tile, patch_size=_first(vision["patch_size"]),
                           mean=tuple(data.get("image_mean", IMAGENET[0])), std=tuple(data.get("image_std", IMAGENET[1])),
                           resample="bicubic", rescale_factor=float(data.get("rescale_factor", 1 / 255)),
                           options={"min_tiles": int(data.get("min_patches", 1)),
                                    "max_tiles": int(data.get("max_patches", 12)), "crop": True})


def image_layout(tokens: int) -> ImageLayout:
    """All tiles then the thumbnail as one run of ``<IMG_CONTEXT>`` inside ``<img>`` ... ``</img>``.

    The marker is ``<IMG_CONTEXT>\\n``, what the published template writes for an image part, so an
    image after text ("text<IMG_CONTEXT>\\n") and before it ("<IMG_CONTEXT>\\ntext") both come out as
    the reference's; the newline is given back after ``</img>``."""
    return ImageLayout(feature_token="<IMG_CONTEXT>", tokens_per_chunk=tokens, overview_template="{features}",
                       slice_template="{features}", row_separator="", image_prefix="<img>", image_suffix="</img>\n",
                       marker="<IMG_CONTEXT>\n", auto_marker_joiner="", overview_last=True)


def bundle_spec(ckpt: Path | None, config: dict[str, Any]) -> BundleSpec:
    template = ChatTemplate(stop_strings=tuple(EOS))  # ChatML (the defaults), no default system message
    return BundleSpec(processor_config(ckpt, config), image_layout(tokens_per_tile(config)), template, list(EOS))
