"""Tiny Gemma 3 VLM checkpoints in the published layout; ``text_model`` puts a real Gemma 3 text model
(e.g. Gemma 3 270M, edgevlm/testing/real_weights.py) behind the tiny random vision tower."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ...testing.tiny_writer import GEMMA_BASE, build_hf_model, gemma_tokenizer, save_hf_vlm, write_json

IMAGE_TOKENS = {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>"}
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] | trim }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<start_of_image>{% elif c['type'] == 'text' %}{{ c['text'] | trim }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")


def random_config(vocab_size: int, special_ids: dict[str, int], text_config: dict[str, Any] | None = None
                  ) -> dict[str, Any]:
    """A tiny Gemma 3 config; ``text_config`` replaces the tiny text model (e.g. the real 270M)."""
    text = text_config or dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                               num_key_value_heads=1, head_dim=16, vocab_size=vocab_size, sliding_window=32,
                               max_position_embeddings=2048, query_pre_attn_scalar=16,
                               layer_types=["sliding_attention", "sliding_attention", "sliding_attention",
                                            "full_attention"])
    text = {**text, "model_type": "gemma3_text"}
    return {
        "architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
        "mm_tokens_per_image": 16, "boi_token_index": special_ids["boi"], "eoi_token_index": special_ids["eoi"],
        "image_token_index": special_ids["image"], "text_config": text,
        "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64,
                          "num_hidden_layers": 2, "num_attention_heads": 4, "image_size": 224, "patch_size": 14,
                          "vision_use_head": False},
    }


def _real_text(text_model: Path, tokenizer: Any) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(text config, tensors) of a text-only Gemma 3 checkpoint, its table grown for the image tokens."""
    from ..common.reference import load_safetensors_dir, read_config

    text_config = {k: v for k, v in read_config(text_model).items()
                   if k not in ("architectures", "transformers_version", "dtype", "torch_dtype")}
    real_text = load_safetensors_dir(text_model)
    # A text-only Gemma 3 has no <image_soft_token>: the tokenizer just added it after the last id.
    # Grow the (tied) embedding table to cover it, padded to a multiple of 64 as the published
    # Gemma 3 VLMs are (262144 -> 262208); the new rows are zero (those positions get image features).
    rows = -(-len(tokenizer) // 64) * 64
    table = real_text["model.embed_tokens.weight"]
    if rows > table.shape[0]:
        real_text["model.embed_tokens.weight"] = torch.cat([table, table.new_zeros(rows - table.shape[0],
                                                                                   table.shape[1])])
        text_config["vocab_size"] = rows
    return text_config, real_text


def make_tiny(name: str, out: Path, seed: int = 0, text_model: str | Path | None = None, fast_init: bool = False,
              sizes: dict[str, Any] | None = None) -> Path:
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessor, Gemma3Processor

    real_text = text_config = None
    if text_model is None:
        tokenizer = gemma_tokenizer(GEMMA_BASE + list(IMAGE_TOKENS.values()), extra_special_tokens=IMAGE_TOKENS)
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(text_model), extra_special_tokens=IMAGE_TOKENS)
        text_config, real_text = _real_text(Path(text_model), tokenizer)
    image_processor = Gemma3ImageProcessor(size={"height": 224, "width": 224}, image_mean=[0.5] * 3,
                                           image_std=[0.5] * 3, resample=2, do_pan_and_scan=False)
    Gemma3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_length=16,
                    chat_template=CHAT_TEMPLATE).save_pretrained(str(out))
    ids = {k: tokenizer.convert_tokens_to_ids(v) for k, v in
           (("boi", "<start_of_image>"), ("eoi", "<end_of_image>"), ("image", "<image_soft_token>"))}
    config = random_config(len(tokenizer), ids, text_config)
    if sizes:
        config["vision_config"].update(sizes.get("vision", {}))
    model = build_hf_model(Gemma3Config, Gemma3ForConditionalGeneration, config, seed)
    save_hf_vlm(model, out, config, seed, fast=fast_init, real_text=real_text)
    eos = [tokenizer.convert_tokens_to_ids(t) for t in ("<eos>", "<end_of_turn>")]
    write_json(out / "generation_config.json", {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": eos,
                                                "pad_token_id": tokenizer.pad_token_id})
    return out
