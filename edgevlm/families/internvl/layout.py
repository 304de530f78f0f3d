"""InternVL data for the manifest (torch-free): tiling parameters, prompt layout, chat turns.

Mirrors transformers' ``InternVLProcessor.replace_image_token`` (``<img>`` + ``<IMG_CONTEXT>`` x
tokens-per-tile x tiles + ``</img>``) and the published -hf chat template (ChatML, no default
system turn, an image part is ``<IMG_CONTEXT>\\n``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...processing.config import ChatTemplate
from ...processing.tiled_prompt import TileLayout


def tiling(ckpt: Path) -> dict[str, Any]:
    """Arguments of ``processing.aspect_tiles.preprocess_aspect_tiles`` (InternVLProcessor crops to patches)."""
    data = json.loads((Path(ckpt) / "preprocessor_config.json").read_text(encoding="utf-8"))
    data = data.get("image_processor", data)
    return {"tile": data["size"]["height"], "mean": tuple(data["image_mean"]), "std": tuple(data["image_std"]),
            "min_tiles": data.get("min_patches", 1), "max_tiles": data.get("max_patches", 12),
            "rescale_factor": data.get("rescale_factor", 1 / 255)}


def tokens_per_tile(config: dict[str, Any]) -> int:
    vision = config["vision_config"]
    size, patch = vision["image_size"], vision["patch_size"]
    size, patch = (size[0] if isinstance(size, list) else size), (patch[0] if isinstance(patch, list) else patch)
    return int((size // patch) ** 2 * config.get("downsample_ratio", 0.5) ** 2)


def image_layout(tokens: int) -> TileLayout:
    """All tiles then the thumbnail as one run of ``<IMG_CONTEXT>`` inside ``<img>`` ... ``</img>``."""
    return TileLayout(feature_token="<IMG_CONTEXT>", tokens_per_chunk=tokens, overview_template="{features}",
                      slice_template="{features}", row_separator="", image_prefix="<img>", image_suffix="</img>",
                      marker="<IMG_CONTEXT>", auto_marker_joiner="\n", overview_last=True)


def chat_template() -> ChatTemplate:
    return ChatTemplate(stop_strings=("<|im_end|>",))  # ChatML, the ChatTemplate defaults, no default system


def grid_of(cols: int, rows: int) -> list[int] | None:
    """The prompt grid ``[cols, rows]``; None for a 1 x 1 grid (one tile, no thumbnail)."""
    return None if cols * rows == 1 else [cols, rows]
