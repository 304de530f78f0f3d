"""Tiny LLaVA 1.5 / LLaVA-NeXT / LLaVA-OneVision checkpoints in the published llava-hf layout.

``make_tiny(name, out, seed, sizes=, fast_init=)`` writes what llava-hf publishes: config.json,
model.safetensors with the published tensor names (``language_model.model.*``,
``language_model.lm_head.weight``, ``vision_tower.vision_model.*``, ``multi_modal_projector.*``,
``image_newline``), tokenizer.json / tokenizer_config.json with the image token, the processor
files with the published chat template, and generation_config.json. transformers'
``AutoProcessor`` and ``AutoModelForImageTextToText`` load and run them.

Sizes are tiny but keep each design's structure (the real value in brackets):

======================  ==========================  ==========================  ==============================
                        llava (1.5)                 llava-next (1.6, vicuna)    llava-onevision (qwen2 0.5b)
======================  ==========================  ==========================  ==============================
vision tower            CLIP, 3 layers [24]         CLIP, 3 layers [24]         SigLIP, 2 layers [26]
tile / patch            56 / 14 -> 4x4 [336 -> 24]  56 / 14 -> 4x4 [24x24]     72 / 14 -> 5x5, 2 px dropped
                                                                                [384 -> 27x27, 6 px dropped]
features                layer -2, CLS dropped       layer -2, CLS dropped       layer -1, all tokens
image processor         CLIP shortest edge + crop   anyres, 5 pinpoints x 1/6   anyres_max_9, 36 pinpoints
                                                                                (1..6 x 1..6 tiles)
text model              Llama [Vicuna-7B]           Llama [Vicuna-7B]           Qwen2 [Qwen2-0.5B]
chat template           USER: / ASSISTANT:          USER: / ASSISTANT:          ChatML, images first
======================  ==========================  ==========================  ==============================
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...testing.tiny_tokenizer import build_tokenizer
from ...testing.tiny_writer import apply_sizes, build_hf_model, randomize, save_safetensors, write_json

from .spec import CLIP_MEAN, CLIP_STD, TINY_NAMES  # noqa: F401

LLAMA_SPECIALS = ["<unk>", "<s>", "</s>", "<image>", "<pad>"]  # Llama-2 / Vicuna ids 0, 1, 2; llava adds two
QWEN2_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]

# The chat templates llava-hf publishes (llava-1.5-*-hf / llava-v1.6-vicuna-*-hf; llava-onevision-*-hf).
VICUNA_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}"
    "{% endif %}{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', "
    "'image') %}{{ '<image>\n' }}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}"
    "{% endfor %}{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}")
ONEVISION_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n'}}{# Render all images first #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{# Render all video then #}{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}"
    "{{ '<video>\n' }}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}"
    "{% endfor %}{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] }}{% endgeneration %}{% endfor %}{% endif %}{{'<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

CLIP_TILE, SIGLIP_TILE, PATCH = 56, 72, 14


def next_pinpoints(tile: int) -> list[list[int]]:
    """llava-v1.6's grid list ((336, 672), (672, 336), (672, 672), (1008, 336), (336, 1008)) for a tile side."""
    return [[tile * h, tile * w] for h, w in ((1, 2), (2, 1), (2, 2), (3, 1), (1, 3))]


def onevision_pinpoints(tile: int) -> list[list[int]]:
    """llava-onevision's 36 grids: 1..6 x 1..6 tiles."""
    return [[tile * i, tile * j] for i in range(1, 7) for j in range(1, 7)]


NEXT_PINPOINTS, ONEVISION_PINPOINTS = next_pinpoints(CLIP_TILE), onevision_pinpoints(SIGLIP_TILE)

# Checkpoint (hub) name prefixes <- transformers 5 module prefixes; first match wins.
MODULE_TO_HUB = (
    ("lm_head.", "language_model.lm_head."),
    ("model.language_model.", "language_model.model."),
    ("model.vision_tower.", "vision_tower.vision_model."),
    ("model.multi_modal_projector.", "multi_modal_projector."),
    ("model.image_newline", "image_newline"),
)


def hub_name(module_name: str) -> str:
    for prefix, hub in MODULE_TO_HUB:
        if module_name.startswith(prefix):
            return hub + module_name[len(prefix):]
    raise ValueError(f"no published name for {module_name!r}")


def _clip_vision() -> dict[str, Any]:
    return {"model_type": "clip_vision_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3,
            "num_attention_heads": 4, "image_size": CLIP_TILE, "patch_size": PATCH, "projection_dim": 32,
            "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5}


def _siglip_vision() -> dict[str, Any]:
    return {"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 4, "image_size": SIGLIP_TILE, "patch_size": PATCH, "vision_use_head": False,
            "hidden_act": "gelu_pytorch_tanh", "layer_norm_eps": 1e-6}


def random_config(name: str, vocab_size: int, ids: dict[str, int]) -> dict[str, Any]:
    """config.json of the tiny checkpoint ``name`` (one of TINY_NAMES)."""
    text: dict[str, Any] = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                            "num_attention_heads": 4, "num_key_value_heads": 2,  # head_dim: hidden / heads
                            "vocab_size": vocab_size, "tie_word_embeddings": False}
    if name == "llava-onevision":
        text.update(model_type="qwen2", max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
                    bos_token_id=None, eos_token_id=ids["<|im_end|>"])
        return {"architectures": ["LlavaOnevisionForConditionalGeneration"], "model_type": "llava_onevision",
                "image_token_index": ids["<image>"], "video_token_index": ids["<video>"],
                "vision_feature_layer": -1, "vision_feature_select_strategy": "full",
                "vision_aspect_ratio": "anyres_max_9", "image_grid_pinpoints": ONEVISION_PINPOINTS,
                "use_image_newline_parameter": True, "projector_hidden_act": "gelu", "tie_word_embeddings": False,
                "text_config": text, "vision_config": _siglip_vision()}
    text.update(model_type="llama", max_position_embeddings=4096, rms_norm_eps=1e-5, rope_theta=10000.0,
                bos_token_id=ids["<s>"], eos_token_id=ids["</s>"], pad_token_id=ids["<pad>"])
    config = {"model_type": "llava", "architectures": ["LlavaForConditionalGeneration"],
              "image_token_index": ids["<image>"], "pad_token_id": ids["<pad>"], "projector_hidden_act": "gelu",
              "vision_feature_layer": -2, "vision_feature_select_strategy": "default", "tie_word_embeddings": False,
              "image_seq_length": (CLIP_TILE // PATCH) ** 2, "text_config": text, "vision_config": _clip_vision()}
    if name == "llava-next":
        config.update(model_type="llava_next", architectures=["LlavaNextForConditionalGeneration"],
                      image_grid_pinpoints=NEXT_PINPOINTS, use_image_newline_parameter=True)
    return config


def _tokenizer(name: str):
    """The transformers tokenizer of the checkpoint (a tiny trained BPE with the family's specials)."""
    from transformers import LlamaTokenizer, PreTrainedTokenizerFast

    if name == "llava-onevision":
        tok = build_tokenizer("bytelevel", QWEN2_SPECIALS)
        return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                       unk_token=None, model_max_length=32768)
    tok = build_tokenizer("sentencepiece", LLAMA_SPECIALS)
    return LlamaTokenizer(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                          pad_token="<pad>", add_bos_token=True, add_eos_token=False, model_max_length=4096)


def _processor(name: str, tokenizer, tile: int, pinpoints: list[list[int]] | None):
    """LLaVA 1.5 / NeXT: the transformers processor as llava-hf publishes it (Pillow image processors)."""
    import transformers as tf

    if name == "llava":
        images = tf.CLIPImageProcessorPil(size={"shortest_edge": tile}, crop_size={"height": tile, "width": tile},
                                          image_mean=CLIP_MEAN, image_std=CLIP_STD, resample=3)
        return tf.LlavaProcessor(image_processor=images, tokenizer=tokenizer, patch_size=PATCH,
                                 vision_feature_select_strategy="default", num_additional_image_tokens=1,
                                 chat_template=VICUNA_TEMPLATE)
    if name == "llava-next":
        images = tf.LlavaNextImageProcessorPil(size={"shortest_edge": tile}, crop_size={"height": tile, "width": tile},
                                               image_grid_pinpoints=pinpoints, image_mean=CLIP_MEAN,
                                               image_std=CLIP_STD, resample=3, do_pad=True)
        return tf.LlavaNextProcessor(image_processor=images, tokenizer=tokenizer, patch_size=PATCH,
                                     vision_feature_select_strategy="default", num_additional_image_tokens=1,
                                     chat_template=VICUNA_TEMPLATE)
    raise ValueError(name)


def _write_onevision_processor(tokenizer, out: Path, tile: int, pinpoints: list[list[int]]) -> None:
    """llava-onevision-*-hf's processor files, written as data: transformers 5 cannot build a
    ``LlavaOnevisionProcessor`` without torchvision (its video processor needs it), and this
    environment has none (installing it would switch every image processor to the torch backend)."""
    from transformers import LlavaOnevisionImageProcessorPil

    size = {"height": tile, "width": tile}
    images = LlavaOnevisionImageProcessorPil(size=size, image_grid_pinpoints=pinpoints,
                                             image_mean=[0.5] * 3, image_std=[0.5] * 3, resample=3, do_pad=True)
    tokenizer.save_pretrained(str(out))
    write_json(out / "processor_config.json", {
        "image_processor": images.to_dict(), "image_token": "<image>", "video_token": "<video>",
        "num_image_tokens": (tile // PATCH) ** 2, "vision_feature_select_strategy": "full",
        "vision_aspect_ratio": "anyres_max_9", "processor_class": "LlavaOnevisionProcessor"})
    # As published; loading it needs torchvision, so nothing here reads it.
    write_json(out / "video_preprocessor_config.json", {
        "video_processor_type": "LlavaOnevisionVideoProcessor", "size": size, "resample": 3,
        "image_mean": [0.5] * 3, "image_std": [0.5] * 3, "rescale_factor": 1 / 255, "do_resize": True,
        "do_rescale": True, "do_normalize": True, "do_convert_rgb": True, "processor_class": "LlavaOnevisionProcessor"})
    (out / "chat_template.jinja").write_text(ONEVISION_TEMPLATE, encoding="utf-8")


_CLASSES = {"llava": ("LlavaConfig", "LlavaForConditionalGeneration"),
            "llava_next": ("LlavaNextConfig", "LlavaNextForConditionalGeneration"),
            "llava_onevision": ("LlavaOnevisionConfig", "LlavaOnevisionForConditionalGeneration")}


QK_SCALE = 2.5  # sharper attention in the tiny text model (see _make_images_matter)


def _make_images_matter(model: Any, seed: int) -> None:
    """Weights whose greedy answers depend on the image and vary from token to token.

    With ``randomize``'s scales the tiny text model's attention is near uniform, so the last token
    averages ~100 similar image rows: OneVision then answered every image with one token repeated 32
    times and the others ignored most of it, which makes 32-token greedy parity a weak check. Sharper
    attention (q and k scaled, scores x 6) and a newline row as large as a feature row fix both:
    measured on the export check's prompt, 24-31 distinct tokens of 32, answers differ per image.
    """
    import torch

    with torch.no_grad():
        for layer in model.model.language_model.layers:
            layer.self_attn.q_proj.weight.mul_(QK_SCALE)
            layer.self_attn.k_proj.weight.mul_(QK_SCALE)
        newline = getattr(model.model, "image_newline", None)
        if newline is not None:  # randomize gives 1-D tensors 0.02 noise: a newline row would barely count
            newline.copy_(torch.randn(newline.shape, generator=torch.Generator().manual_seed(seed + 1)))


def make_tiny(name: str, out: Path, seed: int = 0, sizes: dict[str, Any] | None = None,
              fast_init: bool = False) -> Path:
    """Write the tiny checkpoint ``name`` (one of TINY_NAMES) to ``out``; ``sizes`` swaps in real dims."""
    import transformers as tf

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer(name)
    specials = QWEN2_SPECIALS if name == "llava-onevision" else LLAMA_SPECIALS
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in specials}
    config = random_config(name, len(tokenizer), ids)
    tie = bool((sizes or {}).get("text", {}).get("tie_word_embeddings", False))  # Qwen2-0.5B ties its head
    apply_sizes(config["text_config"], config["vision_config"], sizes, tie=tie)
    config["tie_word_embeddings"] = config["text_config"]["tie_word_embeddings"]
    tile = int(config["vision_config"]["image_size"])  # real sizes: the grids follow the tile (336, 384 px)
    pinpoints = (onevision_pinpoints if name == "llava-onevision" else next_pinpoints)(tile)
    if "image_grid_pinpoints" in config:
        config["image_grid_pinpoints"] = pinpoints
    else:
        config["image_seq_length"] = (tile // PATCH) ** 2
    if name == "llava-onevision":
        _write_onevision_processor(tokenizer, out, tile, pinpoints)
    else:
        _processor(name, tokenizer, tile, pinpoints if name == "llava-next" else None).save_pretrained(str(out))
    config_class, model_class = (getattr(tf, c) for c in _CLASSES[config["model_type"]])
    model = build_hf_model(config_class, model_class, config, seed)
    randomize(model, seed, fast=fast_init)
    if not fast_init:
        _make_images_matter(model, seed)
    tied = config["text_config"].get("tie_word_embeddings", False)
    tensors = {hub_name(k): v for k, v in model.state_dict().items() if not (tied and k == "lm_head.weight")}
    save_safetensors(tensors, out)
    write_json(out / "config.json", config)
    text = config["text_config"]
    generation = {"eos_token_id": text["eos_token_id"]}
    if text.get("bos_token_id") is not None:
        generation.update(bos_token_id=text["bos_token_id"], pad_token_id=text["pad_token_id"])
    write_json(out / "generation_config.json", generation)
    return out
