"""Tiny MiniCPM-V checkpoints in the remote-code layout of the published ones (text fields at the top level)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...testing.tiny_writer import CHATML, CHATML_TEMPLATE, LLAMA3, LLAMA3_TEMPLATE, apply_sizes, randomize, \
    save_safetensors, write_json
from .spec import VERSIONS

IMAGE_TOKENS = ["<unk>", "<image>", "</image>", "<slice>", "</slice>", "<image_id>", "</image_id>",
                "<ref>", "</ref>", "<box>", "</box>", "<quad>", "</quad>", "<point>", "</point>"]


def random_config(version: float, vocab_size: int, special_ids: dict[str, int]) -> dict[str, Any]:
    """A tiny config in the remote-code layout (text fields at top level, as the real checkpoints)."""
    model_type, _ = VERSIONS[version]
    text = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, vocab_size=vocab_size, max_position_embeddings=2048, rms_norm_eps=1e-6,
                rope_theta=10000.0, tie_word_embeddings=False, hidden_act="silu", **special_ids)
    if model_type == "qwen3":
        text["head_dim"] = 32
    return {
        "architectures": ["MiniCPMV"], "model_type": "minicpmv", "version": version,
        "query_num": 96 if version == 2.5 else 64, "image_size": 448, "patch_size": 14,
        "drop_vision_last_layer": False, "batch_vision_input": True, "use_image_id": version >= 2.6,
        "slice_mode": True, "vision_batch_size": 16,
        "slice_config": {"model_type": "minicpmv", "patch_size": 14, "max_slice_nums": 9, "scale_resolution": 448},
        "vision_config": {"model_type": "siglip", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                          "num_attention_heads": 4, "image_size": 980, "patch_size": 14, "layer_norm_eps": 1e-6,
                          "hidden_act": "gelu_pytorch_tanh"},
        **text,
    }


def make_tiny(name: str, out: Path, seed: int = 0, sizes: dict[str, Any] | None = None, fast_init: bool = False) -> Path:
    from ...testing.tiny_tokenizer import build_tokenizer
    from .reference import MiniCPMV

    version = float(name.split("-")[1])
    llama3 = version == 2.5  # 4.0 has a Llama-architecture LLM but ChatML tokens (<|im_end|>)
    specials = (LLAMA3 if llama3 else CHATML) + IMAGE_TOKENS + (["<think>", "</think>"] if version >= 4.5 else [])
    tok = build_tokenizer("bytelevel", specials)
    tok.save(str(out / "tokenizer.json"))
    ids = {t: tok.token_to_id(t) for t in specials}
    bos, eos = (("<|begin_of_text|>", "<|eot_id|>") if llama3 else ("<|im_start|>", "<|im_end|>"))
    config = random_config(version, tok.get_vocab_size(),
                           {"bos_token_id": ids[bos], "eos_token_id": ids[eos], "pad_token_id": ids[specials[1]]})
    # MiniCPM-V keeps text fields at the top level; its LLMs do not tie the output head.
    apply_sizes(config, config["vision_config"], sizes, tie=False)
    write_json(out / "config.json", config)
    model = MiniCPMV(config)
    randomize(model, seed, fast=fast_init)
    save_safetensors(model.state_dict(), out)
    write_json(out / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": bos, "eos_token": eos, "unk_token": "<unk>",
        "pad_token": specials[1], "add_bos_token": llama3, "model_max_length": 2048,
        "chat_template": LLAMA3_TEMPLATE if llama3 else CHATML_TEMPLATE})
    write_json(out / "preprocessor_config.json", {
        "image_processor_type": "MiniCPMVImageProcessor", "auto_map": {}, "max_slice_nums": 9,
        "scale_resolution": 448, "patch_size": 14, "use_image_id": version >= 2.6,
        "image_feature_size": config["query_num"], "im_start": "<image>", "im_end": "</image>",
        "slice_start": "<slice>", "slice_end": "</slice>", "unk": "<unk>", "im_id_start": "<image_id>",
        "im_id_end": "</image_id>", "slice_mode": True, "norm_mean": [0.5, 0.5, 0.5], "norm_std": [0.5, 0.5, 0.5],
        "version": version})
    write_json(out / "generation_config.json", {"bos_token_id": ids[bos], "eos_token_id": ids[eos]})
    return out
