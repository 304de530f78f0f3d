"""Tiny deterministic MiniCPM-V 4.6 / 4.7 checkpoints in the published hub layout.

``make_tiny("minicpmv-4.6" | "minicpmv-4.7", out)`` writes what openbmb/MiniCPM-V-4.6 ships
(config.json, model.safetensors, generation_config.json, preprocessor_config.json, tokenizer.json,
tokenizer_config.json, chat_template.jinja) with the same tensor names (``model.vision_tower.*``,
``model.merger.*``, ``model.language_model.*``; no ``lm_head.weight``: the published model ties it
to the embeddings), written by transformers' own ``save_pretrained``.

Sizes: text hidden 64, 4 layers ``[linear, full, linear, full]`` with 2 key / 4 value heads in the
linear layers (so the grouped-value path and llama.cpp's V-head reorder are exercised), partial
rotary 0.25 of head_dim 64; vision hidden 64, 3 layers, window merger after layer 1.
Options: ``downsample_mode`` ("16x" | "4x"), ``sizes`` (real dims, benchmarks), ``fast_init``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .spec import DOWNSAMPLE_MODES

TINY_NAMES = ("minicpmv-4.6", "minicpmv-4.7")
MODEL_TYPES = {"minicpmv-4.6": "minicpmv4_6", "minicpmv-4.7": "minicpmv4_7"}

# Qwen3.5's special tokens that MiniCPM-V 4.6 uses, then MiniCPM-V's own markup tokens.
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
            "<|video_pad|>", "<think>", "</think>", "<image>", "</image>", "<slice>", "</slice>", "<image_id>",
            "</image_id>", "<ref>", "</ref>", "<box>", "</box>"]
# tokenizer attributes the MiniCPM-V 4.6 processor reads (tokenizer_config.json "extra_special_tokens").
EXTRA_SPECIAL_TOKENS = {
    "image_token": "<|image_pad|>", "video_token": "<|video_pad|>", "image_start_token": "<image>",
    "image_end_token": "</image>", "slice_start_token": "<slice>", "slice_end_token": "</slice>",
    "image_id_start_token": "<image_id>", "image_id_end_token": "</image_id>"}

# Written for these checkpoints: the published template is Qwen3.5's (tools, thinking) with MiniCPM-V's
# image item; this keeps the part our prompts use. An image item renders as "<|image_pad|>\n" (the
# processor expands it to "<image_id>N</image_id><image>...</image>" + slices); the instruct model's
# generation prompt closes an empty think block unless enable_thinking is true.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<|image_pad|>\n{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking %}<think>\n{% else %}<think>\n\n</think>\n\n{% endif %}"
    "{% endif %}")

LAYER_TYPES = ["linear_attention", "full_attention", "linear_attention", "full_attention"]


def text_config(vocab_size: int, ids: dict[str, int]) -> dict[str, Any]:
    """A tiny Qwen3.5 text config (the fields the published 4.6 config sets, scaled down)."""
    return {
        "model_type": "qwen3_5_text", "vocab_size": vocab_size, "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": len(LAYER_TYPES), "layer_types": list(LAYER_TYPES), "full_attention_interval": 2,
        "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 64, "attention_bias": False,
        "linear_conv_kernel_dim": 4, "linear_key_head_dim": 16, "linear_value_head_dim": 16,
        "linear_num_key_heads": 2, "linear_num_value_heads": 4, "hidden_act": "silu", "rms_norm_eps": 1e-6,
        "max_position_embeddings": 4096, "tie_word_embeddings": True,
        # rotary over 16 of 64 head dims = 8 frequencies; M-RoPE sections (t, h, w) must sum to 8
        "rope_parameters": {"rope_type": "default", "rope_theta": 10_000_000.0, "partial_rotary_factor": 0.25,
                            "mrope_section": [3, 3, 2], "mrope_interleaved": True},
        "bos_token_id": None, "eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"],
    }


def random_config(model_type: str, vocab_size: int, ids: dict[str, int], newline_id: int,
                  downsample_mode: str = "16x") -> dict[str, Any]:
    """config.json fields of a tiny MiniCPM-V 4.6 / 4.7 (``model_type``)."""
    config: dict[str, Any] = {
        "text_config": text_config(vocab_size, ids),
        "vision_config": {"model_type": f"{model_type}_vision", "hidden_size": 64,
                          "intermediate_size": 128, "num_hidden_layers": 3, "num_attention_heads": 4,
                          "image_size": 980, "patch_size": 14, "layer_norm_eps": 1e-6,
                          "hidden_act": "gelu_pytorch_tanh"},
        "insert_layer_id": 1, "image_size": 448, "downsample_mode": downsample_mode, "merge_kernel_size": [2, 2],
        "merger_times": 1, "image_token_id": ids["<|image_pad|>"], "video_token_id": ids["<|video_pad|>"],
        "tie_word_embeddings": True,
    }
    if model_type == "minicpmv4_7":  # canvas M-RoPE anchors (config docstring: resolved from the tokenizer)
        config.update(image_start_id=ids["<image>"], image_end_id=ids["</image>"], slice_start_id=ids["<slice>"],
                      slice_end_id=ids["</slice>"], newline_id=newline_id)
    return config


def _apply_sizes(config: dict[str, Any], sizes: dict[str, Any] | None) -> None:
    """Real-size dims (benchmarks); layer types follow ``full_attention_interval`` when the count changes."""
    from ...testing.tiny_writer import apply_sizes

    text = config["text_config"]
    apply_sizes(text, config["vision_config"], sizes, tie=True)
    if sizes and len(text["layer_types"]) != text["num_hidden_layers"]:
        every = int(text.get("full_attention_interval", 4))
        text["layer_types"] = ["full_attention" if (i + 1) % every == 0 else "linear_attention"
                               for i in range(text["num_hidden_layers"])]
    # the window merger's place is a vision size (the top-level copy is what the config class reads)
    config["insert_layer_id"] = config["vision_config"].pop("insert_layer_id", config["insert_layer_id"])


def make_tiny(name: str, out: Path, seed: int = 0, downsample_mode: str = "16x", sizes: dict[str, Any] | None = None,
              fast_init: bool = False) -> Path:
    """Write tiny checkpoint ``name`` ("minicpmv-4.6" or "minicpmv-4.7") to ``out``."""
    import torch
    import transformers
    from transformers import PreTrainedTokenizerFast
    from transformers.models.minicpmv4_6 import MiniCPMV4_6ImageProcessorPil

    from ...testing.tiny_tokenizer import build_tokenizer
    from ...testing.tiny_writer import randomize

    if downsample_mode not in DOWNSAMPLE_MODES:
        raise ValueError(f"downsample_mode {downsample_mode!r} is not one of {sorted(DOWNSAMPLE_MODES)}")
    model_type = MODEL_TYPES[name]
    tok = build_tokenizer("bytelevel", SPECIALS)
    ids = {t: tok.token_to_id(t) for t in SPECIALS}
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        extra_special_tokens=EXTRA_SPECIAL_TOKENS, model_max_length=4096,
                                        clean_up_tokenization_spaces=False)
    tokenizer.save_pretrained(str(out))
    (out / "chat_template.jinja").write_text(CHAT_TEMPLATE, encoding="utf-8")
    # The image processor's file also names the processor class, as the published one does (there is no
    # processor_config.json; AutoProcessor finds MiniCPMV{4_6,4_7}Processor from config.json's model_type).
    MiniCPMV4_6ImageProcessorPil(downsample_mode=downsample_mode).save_pretrained(str(out))
    suffix = model_type[len("minicpmv"):]  # "4_6" / "4_7"
    config_class = getattr(transformers, f"MiniCPMV{suffix}Config")
    model_class = getattr(transformers, f"MiniCPMV{suffix}ForConditionalGeneration")
    fields = random_config(model_type, len(tokenizer), ids, tok.token_to_id("Ċ"), downsample_mode)
    _apply_sizes(fields, sizes)
    torch.manual_seed(seed)
    model = model_class(config_class(**fields))
    randomize(model, seed, fast=fast_init)
    with torch.no_grad():  # the placeholder's row is only ever an output logit (its input rows carry features):
        model.model.language_model.embed_tokens.weight[ids["<|image_pad|>"]] = 0.0  # as untrained, never the argmax
    model.generation_config.update(eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
                                   pad_token_id=ids["<|endoftext|>"], bos_token_id=None)
    model.save_pretrained(str(out))
    _name_processor_class(out / "preprocessor_config.json", suffix)
    return out


def _name_processor_class(path: Path, suffix: str) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    data["processor_class"] = f"MiniCPMV{suffix}Processor"
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
