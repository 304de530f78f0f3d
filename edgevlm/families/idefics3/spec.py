"""SmolVLM / Idefics3 as data (no torch): tiling settings, prompt layout and chat turns for the manifest.

Read from the checkpoint's config.json and preprocessor_config.json; the values mirror transformers'
``Idefics3ImageProcessorPil`` / ``SmolVLMProcessor._prompt_split_image`` / ``_prompt_single_image``
and the published chat templates (NOTES.md has the file:line map).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...processing.config import ChatTemplate, ImageLayout, ProcessorConfig
from ..contract import BundleSpec

NAME = "idefics3"
MODEL_TYPES = ("idefics3", "smolvlm")
EOS = ["<end_of_utterance>"]


def matches(config: dict[str, Any]) -> bool:
    return config.get("model_type") in MODEL_TYPES


def tokens_per_tile(config: dict[str, Any]) -> int:
    """(tile / patch)^2 / scale_factor^2, as ``Idefics3Model.image_seq_len``."""
    vision = config["vision_config"]
    return int(((vision["image_size"] // vision["patch_size"]) ** 2) / (config.get("scale_factor", 2) ** 2))


def image_processor_config(ckpt: Path | None) -> dict[str, Any]:
    """preprocessor_config.json (its ``image_processor`` section when nested); {} when there is none."""
    path = None if ckpt is None else Path(ckpt) / "preprocessor_config.json"
    if path is None or not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data.get("image_processor", data)


def processor_config(ckpt: Path | None, config: dict[str, Any]) -> ProcessorConfig:
    """Square tiles of ``max_image_size.longest_edge`` after fitting the long edge to ``size.longest_edge``
    (Pillow LANCZOS, as the Pillow-backend processor); without processor files, the tower's size and 4 tiles."""
    data = image_processor_config(ckpt)
    vision = config["vision_config"]
    tile = int(data.get("max_image_size", {}).get("longest_edge", vision["image_size"]))
    return ProcessorConfig(kind="square_tiles", image_size=tile, patch_size=int(vision["patch_size"]),
                           mean=tuple(data.get("image_mean", (0.5,) * 3)), std=tuple(data.get("image_std", (0.5,) * 3)),
                           resample="lanczos", rescale_factor=float(data.get("rescale_factor", 1 / 255)),
                           options={"longest_edge": int(data.get("size", {}).get("longest_edge", 4 * tile)),
                                    "split": bool(data.get("do_image_splitting", True))})


def image_layout(tokens: int) -> ImageLayout:
    """Tiles row by row (``<fake_token_around_image><row_r_col_c>`` + features, a newline after every row),
    a blank line, then the global image; a one-tile image is the global image alone."""
    return ImageLayout(feature_token="<image>", tokens_per_chunk=tokens,
                       overview_template="<fake_token_around_image><global-img>{features}<fake_token_around_image>",
                       slice_template="<fake_token_around_image><row_{row}_col_{col}>{features}",
                       slices_close="\n\n", row_separator="\n", marker="<image>", auto_marker_joiner="",
                       overview_last=True)


def chat_template(model_type: str) -> ChatTemplate:
    """The published template: capitalised role, ``:`` (``': '`` when the message starts with text),
    ``<end_of_utterance>\\n`` ends a turn. SmolVLM writes ``<|im_start|>`` once at the start; Idefics3's
    Llama 3 tokenizer adds ``<|begin_of_text|>`` (our runtime adds nothing, so it is written here)."""
    return ChatTemplate(system_template="System:{content}<end_of_utterance>\n",
                        user_template="User:{content}<end_of_utterance>\n",
                        assistant_template="Assistant:{content}<end_of_utterance>\n",
                        generation_prompt="Assistant:", bos="<|begin_of_text|>" if model_type == "idefics3"
                        else "<|im_start|>", stop_strings=tuple(EOS), text_first_prefix=" ")


def bundle_spec(ckpt: Path | None, config: dict[str, Any]) -> BundleSpec:
    return BundleSpec(processor_config(ckpt, config), image_layout(tokens_per_tile(config)),
                      chat_template(config.get("model_type", NAME)), list(EOS))
