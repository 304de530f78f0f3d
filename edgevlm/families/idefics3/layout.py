"""SmolVLM / Idefics3 data for the manifest (torch-free): tiling parameters, prompt layout, chat turns.

Read from the checkpoint's config.json, preprocessor_config.json and processor_config.json; the values
mirror transformers' ``SmolVLMProcessor`` / ``Idefics3Processor`` (``processing_smolvlm.py``
``_prompt_split_image`` / ``_prompt_single_image``) and the published chat templates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...processing.config import ChatTemplate
from ...processing.tiled_prompt import TileLayout


def _read(ckpt: Path, name: str) -> dict[str, Any]:
    path = Path(ckpt) / name
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def tiling(ckpt: Path) -> dict[str, Any]:
    """Arguments of ``processing.square_tiles.preprocess_square_tiles`` for this checkpoint."""
    data = _read(ckpt, "preprocessor_config.json")
    data = data.get("image_processor", data)
    return {"tile": data["max_image_size"]["longest_edge"], "longest_edge": data["size"]["longest_edge"],
            "mean": tuple(data["image_mean"]), "std": tuple(data["image_std"]),
            "rescale_factor": data.get("rescale_factor", 1 / 255), "split": data.get("do_image_splitting", True)}


def tokens_per_tile(config: dict[str, Any]) -> int:
    """(tile / patch)^2 / scale_factor^2, as ``Idefics3Model.image_seq_len``."""
    vision = config["vision_config"]
    return int(((vision["image_size"] // vision["patch_size"]) ** 2) / (config.get("scale_factor", 2) ** 2))


def image_layout(tokens: int) -> TileLayout:
    """Tiles row by row (each row ends with a newline), a blank line, then the global image."""
    return TileLayout(feature_token="<image>", tokens_per_chunk=tokens,
                      overview_template="<fake_token_around_image><global-img>{features}<fake_token_around_image>",
                      slice_template="<fake_token_around_image><row_{row}_col_{col}>{features}",
                      slices_close="\n\n", row_separator="\n", marker="<image>", auto_marker_joiner="",
                      overview_last=True, text_first_prefix=" ")


def chat_template(model_type: str) -> ChatTemplate:
    """The published template: capitalised roles, ``:`` then the content (``': '`` when it starts with
    text, via ``TileLayout.text_first_prefix``), ``<end_of_utterance>`` ends a turn. SmolVLM's template
    writes ``<|im_start|>`` once at the start; Idefics3's tokenizer adds ``<|begin_of_text|>`` instead
    (our tokenizer adds nothing, so it is written as text here too)."""
    bos = "<|begin_of_text|>" if model_type == "idefics3" else "<|im_start|>"
    return ChatTemplate(system_template="System:{content}<end_of_utterance>\n",
                        user_template="User:{content}<end_of_utterance>\n",
                        assistant_template="Assistant:{content}<end_of_utterance>\n",
                        generation_prompt="Assistant:", bos=bos, stop_strings=("<end_of_utterance>",))


def grid_of(rows: int, cols: int) -> list[int] | None:
    """The prompt grid ``[cols, rows]`` of a tiling plan; None for a single (global) tile."""
    return None if rows == 0 else [cols, rows]
