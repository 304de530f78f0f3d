"""Tiny Qwen2-VL / Qwen2.5-VL checkpoints in the published hub layout, for tests.

Files as on the Hub (Qwen/Qwen2-VL-2B-Instruct, Qwen/Qwen2.5-VL-7B-Instruct): a flat config.json
(text fields at the top, ``vision_config`` nested, ``rope_scaling`` {type mrope, mrope_section}),
model.safetensors with the published tensor names (``visual.*``, ``model.*``, ``lm_head.*``),
tokenizer.json with the Qwen2 special tokens, tokenizer_config.json and chat_template.json with the
published chat template, preprocessor_config.json and generation_config.json. transformers'
``AutoProcessor`` and ``AutoModelForImageTextToText`` load them like the real checkpoints.

Shapes are tiny (text hidden 64, 2 layers; vision depth 3 / 4: llama.cpp's converter maps the merger MLP
`mlp.2` by block index, so fewer than 3 blocks fail there) but keep every structural feature:
GQA, M-RoPE sections that split head_dim/2 unevenly like [16, 24, 24], 2.5's window attention in
blocks 0 and 2 and full attention in blocks 1 and 3 (``fullatt_block_indexes`` with the regular
period llama.cpp requires), 2.0 tied to its embeddings like the 2B and 2.5 untied like the 7B.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


TINY_NAMES = ("qwen2-vl", "qwen2.5-vl")
VERSIONS = {"qwen2-vl": "2", "qwen2.5-vl": "2.5"}

# Qwen2 specials after <|endoftext|> <|im_start|> <|im_end|>, in the published id order (151646...).
QWEN_VISION_TOKENS = ["<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>", "<|box_end|>",
                      "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
                      "<|image_pad|>", "<|video_pad|>"]
QWEN25_EXTRA_TOKENS = ["<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
                       "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"]

# The published chat template of Qwen2-VL-*-Instruct and Qwen2.5-VL-*-Instruct (chat_template.json).
QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in "
    "content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] "
    "== 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}"
    "Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content "
    "%}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "<|im_start|>assistant\n{% endif %}")

# preprocessor_config.json as published (min 4 patches, max 16384 merged tokens)
PUBLISHED_MIN_PIXELS = 56 * 56
PUBLISHED_MAX_PIXELS = 28 * 28 * 16384
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def random_config(version: str, vocab_size: int, ids: dict[str, int]) -> dict[str, Any]:
    """A tiny config.json (published flat layout) for version "2" or "2.5"."""
    text = {"hidden_act": "silu", "hidden_size": 64, "intermediate_size": 128, "max_position_embeddings": 4096,
            "max_window_layers": 2, "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2,
            "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "sliding_window": 4096, "use_sliding_window": False,
            "use_cache": True, "attention_dropout": 0.0, "initializer_range": 0.02, "vocab_size": vocab_size,
            # head_dim 16 -> 8 rotary frequencies, split unevenly as the real [16, 24, 24] of 64
            "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]}}
    if version == "2":
        vision = {"depth": 3, "embed_dim": 32, "mlp_ratio": 4, "num_heads": 4, "in_chans": 3, "hidden_size": 64,
                  "patch_size": 14, "spatial_merge_size": 2, "spatial_patch_size": 14, "temporal_patch_size": 2}
        arch, model_type, tied = "Qwen2VLForConditionalGeneration", "qwen2_vl", True
    else:
        # window_size 112 px = 4 merged tokens per window side; blocks 0, 2 windowed, 1, 3 full
        vision = {"depth": 4, "hidden_act": "silu", "hidden_size": 32, "intermediate_size": 64, "num_heads": 4,
                  "in_chans": 3, "out_hidden_size": 64, "patch_size": 14, "spatial_merge_size": 2,
                  "spatial_patch_size": 14, "window_size": 112, "fullatt_block_indexes": [1, 3],
                  "tokens_per_second": 2, "temporal_patch_size": 2}
        arch, model_type, tied = "Qwen2_5_VLForConditionalGeneration", "qwen2_5_vl", False
    return {"architectures": [arch], "model_type": model_type, **text, "tie_word_embeddings": tied,
            "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
            "vision_start_token_id": ids["<|vision_start|>"], "vision_end_token_id": ids["<|vision_end|>"],
            "vision_token_id": ids["<|vision_pad|>"], "image_token_id": ids["<|image_pad|>"],
            "video_token_id": ids["<|video_pad|>"], "vision_config": vision}


def make_tiny(name: str, out: Path, seed: int = 0, sizes: dict[str, Any] | None = None,
              fast_init: bool = False) -> Path:
    """Write tiny checkpoint ``name`` ("qwen2-vl" or "qwen2.5-vl") to ``out``; return the path.

    ``sizes`` ({"text": {...}, "vision": {...}}) gives real dims (benchmarks/models.py); ``fast_init``
    plain normal weights (speed runs: the values do not matter)."""
    from ...testing.tiny_tokenizer import build_tokenizer
    from ...testing.tiny_writer import CHATML, apply_sizes, write_json

    version = VERSIONS[name]
    specials = CHATML + QWEN_VISION_TOKENS + (QWEN25_EXTRA_TOKENS if version == "2.5" else [])
    tok = build_tokenizer("bytelevel", specials)
    tok.save(str(out / "tokenizer.json"))
    ids = {t: tok.token_to_id(t) for t in specials}
    config = random_config(version, tok.get_vocab_size(), ids)
    # Qwen2-VL keeps the text fields at the top level of config.json; 2B / 3B tie the output head.
    apply_sizes(config, config["vision_config"], sizes, tie=config["tie_word_embeddings"])
    build_weights(config, seed, out, fast_init)
    write_json(out / "config.json", config)
    write_json(out / "tokenizer_config.json", {
        "tokenizer_class": "Qwen2Tokenizer", "bos_token": None, "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>", "unk_token": None, "errors": "replace", "add_prefix_space": False,
        "clean_up_tokenization_spaces": False, "split_special_tokens": False, "model_max_length": 32768,
        "chat_template": QWEN2_VL_CHAT_TEMPLATE})
    write_json(out / "chat_template.json", {"chat_template": QWEN2_VL_CHAT_TEMPLATE})
    write_json(out / "preprocessor_config.json", {
        "min_pixels": PUBLISHED_MIN_PIXELS, "max_pixels": PUBLISHED_MAX_PIXELS, "patch_size": 14,
        "temporal_patch_size": 2, "merge_size": 2, "image_mean": CLIP_MEAN, "image_std": CLIP_STD,
        "image_processor_type": "Qwen2VLImageProcessor",
        "processor_class": "Qwen2VLProcessor" if version == "2" else "Qwen2_5_VLProcessor"})
    write_json(out / "generation_config.json", {
        "bos_token_id": ids["<|endoftext|>"], "pad_token_id": ids["<|endoftext|>"],
        "eos_token_id": [ids["<|im_end|>"], ids["<|endoftext|>"]]})
    return out


def build_weights(config: dict[str, Any], seed: int, out: Path, fast: bool = False) -> None:
    """Random seeded weights for ``config`` saved under the published names (model.safetensors)."""
    import torch

    from ...testing.tiny_writer import randomize, save_safetensors
    from .reference import hf_model, module_to_hub

    torch.manual_seed(seed)
    model = hf_model(config)
    randomize(model, seed, fast=fast)
    if not fast:
        _sharpen_text(model)
        _never_predict_placeholders(model, [config["image_token_id"], config["video_token_id"]])
    save_safetensors({module_to_hub(k): v for k, v in model.state_dict().items()
                      if not (k == "lm_head.weight" and config["tie_word_embeddings"])}, out)


def _never_predict_placeholders(model: Any, ids: list[int]) -> None:
    """Zero the output-head rows (tied: embedding rows) of the image / video placeholders.

    A trained Qwen2-VL never predicts ``<|image_pad|>``; a random one can (the tiny 2.0 did at step 12
    of the export check), and edgevlm's runtime never samples it (its rows only carry image features),
    so greedy parity with transformers' unconstrained ``generate`` needs a checkpoint that behaves like
    a trained one. A zero row scores exactly 0, far below the sharpened top logits; its input embedding
    is never used (image features replace it)."""
    import torch

    with torch.no_grad():
        model.lm_head.weight[ids] = 0.0  # the embedding table itself when tied


def _sharpen_text(model: Any) -> None:
    """Sharper text attention and logits, so greedy decoding varies and has clear winners.

    With ``randomize_`` alone both tiny models settle into repeating one token after a few steps
    (a 32-token parity test would then compare mostly copies); larger query/key weights make the
    attention pattern depend on the prompt, and a larger final norm gaps the top logits (measured:
    28-31 distinct tokens of 32, first-step top-2 gap 0.8-5.8).
    """
    import torch

    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.startswith("model.language_model.") and name.endswith(("q_proj.weight", "k_proj.weight")):
                tensor.mul_(4.0)
            elif name == "model.language_model.norm.weight":
                tensor.mul_(3.0)
