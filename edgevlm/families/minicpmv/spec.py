"""MiniCPM-V 2.5 / 2.6 / 4.0 / 4.5 as data (no torch): versions, processor, prompt layout, chat template."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import CheckpointError
from ...processing.config import ChatTemplate, ImageLayout, ProcessorConfig
from ..contract import BundleSpec

NAME = "minicpmv"
TINY_NAMES = ("minicpmv-2.5", "minicpmv-2.6", "minicpmv-4.5")  # make_tiny names (tiny.py)

# version -> (text model_type in transformers, llama.cpp clip.minicpmv_version)
VERSIONS: dict[float, tuple[str, int]] = {2.5: ("llama", 2), 2.6: ("qwen2", 3), 4.0: ("llama", 5), 4.5: ("qwen3", 6)}

# The upstream chat() sampling defaults (techspec §1.5).
CHAT_SAMPLING = {"temperature": 0.7, "top_p": 0.8, "top_k": 100, "repetition_penalty": 1.05}

LLAMA3_CHAT = ChatTemplate(
    system_template="<|start_header_id|>system<|end_header_id|>\n\n{content}<|eot_id|>",
    user_template="<|start_header_id|>user<|end_header_id|>\n\n{content}<|eot_id|>",
    assistant_template="<|start_header_id|>assistant<|end_header_id|>\n\n{content}<|eot_id|>",
    generation_prompt="<|start_header_id|>assistant<|end_header_id|>\n\n", bos="<|begin_of_text|>",
    strip_content="message", stop_strings=("<|eot_id|>",))
CHATML_CHAT = ChatTemplate(default_system="You are a helpful assistant.", stop_strings=("<|im_end|>", "<|endoftext|>"))


def matches(config: dict[str, Any]) -> bool:
    return config.get("model_type") == "minicpmv" or "MiniCPMV" in (config.get("architectures") or [])


def version_of(config: dict[str, Any]) -> float:
    version = float(config.get("version", 2.5))
    if version not in VERSIONS:
        raise CheckpointError(f"MiniCPM-V version {version} is not supported; edgevlm supports "
                              f"{sorted(VERSIONS)} (4.6 uses a different architecture).")
    return version


def bundle_spec(ckpt: Path | None, config: dict[str, Any]) -> BundleSpec:
    """2.5: Llama-3 chat, <image>/<slice> nesting, 96 queries; 2.6+: ChatML, image ids, <slice> per slice."""
    version = version_of(config)
    # slice settings live in slice_config (2.6+); older configs keep them at the top level
    slicing = {**{k: config[k] for k in ("max_slice_nums", "scale_resolution", "patch_size") if k in config},
               **config.get("slice_config", {})}
    processor = ProcessorConfig(kind="slice", image_size=slicing.get("scale_resolution", 448),
                                patch_size=slicing.get("patch_size", 14),
                                max_slice_nums=slicing.get("max_slice_nums", 9),
                                scale_resolution=slicing.get("scale_resolution", 448))
    tokens = int(config.get("query_num", 96 if version == 2.5 else 64))
    if version == 2.5:
        layout = ImageLayout(feature_token="<unk>", tokens_per_chunk=tokens, slice_template="<image>{features}</image>",
                             slices_open="<slice>", slices_close="</slice>", image_suffix="\n")
        return BundleSpec(processor, layout, LLAMA3_CHAT, ["<|eot_id|>", "<|end_of_text|>"], CHAT_SAMPLING)
    image_id = "<image_id>{index}</image_id>" if config.get("use_image_id", True) else ""
    layout = ImageLayout(feature_token="<unk>", tokens_per_chunk=tokens, image_id_template=image_id)
    return BundleSpec(processor, layout, CHATML_CHAT, ["<|im_end|>", "<|endoftext|>"], CHAT_SAMPLING)


def scale_resolution(config: dict[str, Any]) -> int:
    return int((config.get("slice_config") or {}).get("scale_resolution", config.get("scale_resolution", 448)))
