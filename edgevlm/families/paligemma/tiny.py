"""Tiny PaliGemma (Gemma text) and PaliGemma 2 (Gemma 2 text) checkpoints in the published layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...testing.tiny_writer import GEMMA_BASE, apply_sizes, build_hf_model, gemma_tokenizer, save_hf_vlm, write_json



def random_config(version: int, vocab_size: int, image_token_id: int) -> dict[str, Any]:
    """A tiny PaliGemma (version 1: Gemma text) or PaliGemma 2 (version 2: Gemma 2 text) config."""
    text: dict[str, Any] = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                num_key_value_heads=1, head_dim=16, vocab_size=vocab_size,
                                max_position_embeddings=2048, hidden_activation="gelu_pytorch_tanh")
    if version == 1:
        text["model_type"] = "gemma"
    else:
        text.update(model_type="gemma2", num_key_value_heads=2, final_logit_softcapping=30.0,
                    attn_logit_softcapping=50.0, sliding_window=4096, query_pre_attn_scalar=16)
    return {
        "architectures": ["PaliGemmaForConditionalGeneration"], "model_type": "paligemma",
        "image_token_index": image_token_id, "projection_dim": 64, "hidden_size": 64,
        "vocab_size": vocab_size, "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0,
        "text_config": text,
        "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64,
                          "num_hidden_layers": 2, "num_attention_heads": 4, "image_size": 224, "patch_size": 14,
                          "projection_dim": 64, "vision_use_head": False},
    }


def make_tiny(name: str, out: Path, seed: int = 0, sizes: dict[str, Any] | None = None, fast_init: bool = False) -> Path:
    from transformers import (PaliGemmaConfig, PaliGemmaForConditionalGeneration, PaliGemmaProcessor,
                              SiglipImageProcessor)

    specials = GEMMA_BASE + ["<image>"] + [f"<loc{i:04d}>" for i in range(1024)] + [f"<seg{i:03d}>" for i in range(128)]
    tokenizer = gemma_tokenizer(specials, add_bos_token=False, add_eos_token=False)
    image_processor = SiglipImageProcessor(size={"height": 224, "width": 224}, image_mean=[0.5] * 3,
                                           image_std=[0.5] * 3, resample=3)
    image_processor.image_seq_length = 256
    PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(str(out))
    config = random_config(2 if name == "paligemma2" else 1, len(tokenizer), tokenizer.convert_tokens_to_ids("<image>"))
    apply_sizes(config["text_config"], config["vision_config"], sizes, tie=True)
    if sizes:  # the projector maps the vision width onto the text width
        config["projection_dim"] = config["vision_config"].get("projection_dim", config["projection_dim"])
        config["hidden_size"] = config["text_config"]["hidden_size"]
    model = build_hf_model(PaliGemmaConfig, PaliGemmaForConditionalGeneration, config, seed)
    save_hf_vlm(model, out, config, seed, fast=fast_init)
    write_json(out / "generation_config.json", {"bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0})
    return out
