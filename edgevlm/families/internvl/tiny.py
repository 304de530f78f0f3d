"""A tiny InternVL checkpoint in the published "-hf" layout (``make_tiny("internvl", dir)``).

=====================  ===============================  ==================================
                       InternVL3-1B-hf (real)           tiny "internvl"
=====================  ===============================  ==================================
tile (size)            448                              112
patch                  14 (32 per tile side)            14 (8 per side)
downsample_ratio       0.5 -> 256 tokens per tile       0.5 -> 16 tokens per tile
min / max patches      1 / 12                           1 / 12
resample / mean, std   BICUBIC / ImageNet               same
vision                 InternViT-300M (LayerNorm, no    InternViT, 4 layers, hidden 32, same
                       qk-norm, layer scale, CLS)       flags
text model             Qwen2.5-0.5B (untied head)       Qwen2 2 layers, hidden 64, tied (as the 2B)
=====================  ===============================  ==================================

Tensor names are the published ones: transformers' "llava" layout (``vision_tower.*``,
``multi_modal_projector.*``, ``language_model.model.*``), which transformers maps onto its modules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ...testing.tiny_writer import apply_sizes, build_hf_model, decisive_text_weights, randomize, save_safetensors, \
    write_json
from ..common.hf_vlm import module_to_hub
from .spec import tokens_per_tile


# The published InternVL -hf chat template (ChatML, no default system turn; an image is "<IMG_CONTEXT>\n").
INTERNVL_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n'}}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}{{ '<IMG_CONTEXT>\n' }}"
    "{% elif content['type'] == 'video' %}{{ '<video>\n' }}{% elif content['type'] == 'text' %}"
    "{{ content['text'] }}{% endif %}{% endfor %}{% endif %}{{'<|im_end|>\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{'<|im_start|>assistant\n' }}{% endif %}")

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>", "<quad>", "</quad>",
            "<ref>", "</ref>", "<box>", "</box>", "<video>"]
EXTRA_SPECIAL = {"start_image_token": "<img>", "end_image_token": "</img>", "context_image_token": "<IMG_CONTEXT>",
                 "video_token": "<video>"}
TILE, PATCH, DOWNSAMPLE = 112, 14, 0.5
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def random_config(vocab_size: int, ids: dict[str, int]) -> dict[str, Any]:
    text = dict(model_type="qwen2", hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, vocab_size=vocab_size, max_position_embeddings=4096, rms_norm_eps=1e-6,
                rope_theta=1000000.0, tie_word_embeddings=True, bos_token_id=ids["bos"], eos_token_id=ids["eos"])
    # 4 vision layers, not 2: llama.cpp's converter names the projector's mlp1.3 through its block map, which has
    # one entry per vision layer (a 2-layer tower could not be converted for the mmproj comparison)
    vision = dict(model_type="internvl_vision", hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                  num_attention_heads=4, image_size=[TILE, TILE], patch_size=[PATCH, PATCH], attention_bias=True,
                  use_qk_norm=False, norm_type="layer_norm", layer_norm_eps=1e-6, hidden_act="gelu",
                  layer_scale_init_value=0.1, use_mean_pooling=True, use_absolute_position_embeddings=True)
    config = {"architectures": ["InternVLForConditionalGeneration"], "model_type": "internvl",
              "image_token_id": ids["image"], "downsample_ratio": DOWNSAMPLE,
              "projector_hidden_act": "gelu", "vision_feature_layer": -1, "vision_feature_select_strategy": "default",
              "tie_word_embeddings": True, "text_config": text, "vision_config": vision}
    config["image_seq_length"] = tokens_per_tile(config)
    return config


def _write_processor_files(out: Path, tile: int, seq_len: int) -> None:
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

    # As published: crop_to_patches false here, switched on by InternVLProcessor's own images_kwargs.
    image_processor = GotOcr2ImageProcessorPil(size={"height": tile, "width": tile}, crop_to_patches=False,
                                               min_patches=1, max_patches=12, resample=3, image_mean=IMAGENET_MEAN,
                                               image_std=IMAGENET_STD)
    data = image_processor.to_dict()
    data["image_processor_type"] = "GotOcr2ImageProcessor"
    write_json(out / "preprocessor_config.json", data)
    write_json(out / "processor_config.json", {"processor_class": "InternVLProcessor", "image_seq_length": seq_len})
    (out / "chat_template.jinja").write_text(INTERNVL_TEMPLATE, encoding="utf-8")


def make_tiny(name: str, out: Path, seed: int = 0, sizes: dict[str, Any] | None = None, fast_init: bool = False
              ) -> Path:
    """Write the tiny InternVL checkpoint to ``out`` (``name`` is "internvl"); ``sizes`` = real dims (benchmarks)."""
    from transformers import InternVLConfig, InternVLForConditionalGeneration, PreTrainedTokenizerFast

    from ...testing.tiny_tokenizer import build_tokenizer

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=build_tokenizer("bytelevel", SPECIALS),
                                        eos_token="<|im_end|>", pad_token="<|endoftext|>", model_max_length=4096,
                                        extra_special_tokens=EXTRA_SPECIAL)
    tokenizer.chat_template = INTERNVL_TEMPLATE
    tokenizer.save_pretrained(str(out))
    ids = {t: tokenizer.convert_tokens_to_ids(s) for t, s in
           (("bos", "<|im_start|>"), ("eos", "<|im_end|>"), ("image", "<IMG_CONTEXT>"))}
    config = random_config(len(tokenizer), ids)
    tie = bool((sizes or {}).get("tie_word_embeddings", True))  # InternVL3-1B unties its head, 2B ties it
    apply_sizes(config["text_config"], config["vision_config"], sizes, tie=tie)
    config["tie_word_embeddings"] = tie
    config["image_seq_length"] = tokens_per_tile(config)  # the sizes may change the tile
    size = config["vision_config"]["image_size"]
    _write_processor_files(out, size[0] if isinstance(size, list) else size, config["image_seq_length"])
    model = build_hf_model(InternVLConfig, InternVLForConditionalGeneration, config, seed)
    randomize(model, seed, fast=fast_init)
    if not fast_init:
        with torch.no_grad():  # layer scales near 1 (randomize gives 1-D tensors ~0.02): every block matters
            for layer in model.model.vision_tower.encoder.layer:
                layer.lambda_1.mul_(10.0).add_(1.0)
                layer.lambda_2.mul_(10.0).add_(1.0)
        decisive_text_weights(model.model.language_model, model.lm_head, [ids["eos"]])
    tensors = {module_to_hub(k): v for k, v in model.state_dict().items() if not (tie and k == "lm_head.weight")}
    save_safetensors(tensors, out)
    write_json(out / "config.json", config)
    write_json(out / "generation_config.json", {"bos_token_id": ids["bos"], "eos_token_id": ids["eos"],
                                                "pad_token_id": tokenizer.pad_token_id})
    return out
