"""Tiny SmolVLM and Idefics3 checkpoints in the published hub layout (``make_tiny("smolvlm" | "idefics3", dir)``).

What is kept from the real models and what is shrunk (so tests are fast but exercise the same code):

=====================  ==========================  ===========================  ==========================
                       SmolVLM-256M (real)         tiny "smolvlm"               tiny "idefics3"
=====================  ==========================  ===========================  ==========================
tile (max_image_size)  512                         64                           84 (Idefics3-8B: 364)
resize longest edge    2048 (= 4 tiles)            256 (= 4 tiles)              336 (= 4 tiles, as 1456/364)
patch                  16 (32 per tile side)       8 (8 per side)               14 (6 per side, as 26 real)
scale_factor           4                           4 (4 tokens per tile)        2 (9 tokens per tile)
resample / mean, std   LANCZOS / 0.5, 0.5          same                         same
text model             Llama (SmolLM2)             Llama 2 layers, hidden 64    Llama 2 layers, hidden 64
prompt                 ``<|im_start|>User:...``    SmolVLM's published template  Idefics3's (BOS added by tokenizer)
=====================  ==========================  ===========================  ==========================

The tensor names are the published ones (``model.vision_model.*``, ``model.connector.*``,
``model.text_model.*``, ``lm_head.weight``), which are also transformers 5's module names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...testing.tiny_writer import (apply_sizes, build_hf_model, decisive_text_weights, randomize, save_safetensors,
                                    write_json)
from .spec import tokens_per_tile

# Chat templates as the published checkpoints carry them (SmolVLM-256M/500M-Instruct, Idefics3-8B-Llama3).
SMOLVLM_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}")
IDEFICS3_TEMPLATE = (
    "{% for message in messages %}{{message['role'].capitalize()}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}")

IMAGE_TOKENS = ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"]
ROW_COL_TOKENS = [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]  # the processor's 6 x 6
EXTRA_SPECIAL = {"fake_image_token": "<fake_token_around_image>", "image_token": "<image>",
                 "end_of_utterance_token": "<end_of_utterance>", "global_image_token": "<global-img>"}

# name -> tile and patch sizes, pixel-shuffle scale, tokenizer specials, chat template, model class
VARIANTS: dict[str, dict[str, Any]] = {
    "smolvlm": dict(tile=64, patch=8, scale=4, base=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                    bos="<|im_start|>", pad="<|im_end|>", unk="<|endoftext|>", bos_in_tokenizer=False,
                    template=SMOLVLM_TEMPLATE, model_type="smolvlm", arch="SmolVLMForConditionalGeneration"),
    "idefics3": dict(tile=84, patch=14, scale=2, base=["<|begin_of_text|>", "<|end_of_text|>", "<unk>"],
                     bos="<|begin_of_text|>", pad="<|end_of_text|>", unk="<unk>", bos_in_tokenizer=True,
                     template=IDEFICS3_TEMPLATE, model_type="idefics3", arch="Idefics3ForConditionalGeneration"),
}


def random_config(name: str, vocab_size: int, ids: dict[str, int]) -> dict[str, Any]:
    v = VARIANTS[name]
    text = dict(model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, head_dim=16, vocab_size=vocab_size,
                max_position_embeddings=4096, rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=False,
                bos_token_id=ids["bos"], eos_token_id=ids["eos"], pad_token_id=ids["pad"])
    vision = dict(model_type=f"{v['model_type']}_vision", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, image_size=v["tile"], patch_size=v["patch"], hidden_act="gelu_pytorch_tanh",
                  layer_norm_eps=1e-6)
    return {"architectures": [v["arch"]], "model_type": v["model_type"], "image_token_id": ids["image"],
            "scale_factor": v["scale"], "tie_word_embeddings": False, "use_cache": True, "pad_token_id": ids["pad"],
            "text_config": text, "vision_config": vision}


def _tokenizer(name: str):
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    from ...testing.tiny_tokenizer import build_tokenizer

    v = VARIANTS[name]
    # "\n\n" as one token, as SmolLM2's and Llama 3's vocabularies have it: mtmd's idefics3 prompt needs it
    tok = build_tokenizer("bytelevel", v["base"] + IMAGE_TOKENS + ROW_COL_TOKENS, extra_merges=(("Ċ", "Ċ"),))
    if v["bos_in_tokenizer"]:  # Llama 3 (Idefics3): the tokenizer adds <|begin_of_text|>, the template does not
        bos = v["bos"]
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                           special_tokens=[(bos, tok.token_to_id(bos))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=v["bos"], eos_token="<end_of_utterance>",
                                   pad_token=v["pad"], unk_token=v["unk"], model_max_length=4096,
                                   extra_special_tokens=EXTRA_SPECIAL)


def _write_processor_files(name: str, out: Path, config: dict[str, Any]) -> None:
    """preprocessor_config.json, processor_config.json and chat_template.jinja as the published checkpoints have them."""
    from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil

    v, vision = VARIANTS[name], config["vision_config"]
    tile = vision["image_size"]
    # Both families' image processors are the same algorithm; the class name is what AutoProcessor reads.
    image_processor = SmolVLMImageProcessorPil(
        do_resize=True, size={"longest_edge": 4 * tile}, max_image_size={"longest_edge": tile},
        do_image_splitting=True, resample=1, image_mean=[0.5] * 3, image_std=[0.5] * 3, do_pad=True)
    data = image_processor.to_dict()
    data["image_processor_type"] = "SmolVLMImageProcessor" if name == "smolvlm" else "Idefics3ImageProcessor"
    write_json(out / "preprocessor_config.json", data)
    write_json(out / "processor_config.json", {
        "processor_class": "SmolVLMProcessor" if name == "smolvlm" else "Idefics3Processor",
        "image_seq_len": tokens_per_tile(config)})
    (out / "chat_template.jinja").write_text(v["template"], encoding="utf-8")


def make_tiny(name: str, out: Path, seed: int = 0, sizes: dict[str, Any] | None = None, fast_init: bool = False
              ) -> Path:
    """Write the tiny ``name`` ("smolvlm" | "idefics3") checkpoint to ``out``; ``sizes`` = real dims (benchmarks)."""
    import transformers

    v = VARIANTS[name]
    tokenizer = _tokenizer(name)
    tokenizer.chat_template = v["template"]
    tokenizer.save_pretrained(str(out))
    ids = {"bos": tokenizer.convert_tokens_to_ids(v["bos"]), "pad": tokenizer.convert_tokens_to_ids(v["pad"]),
           "eos": tokenizer.convert_tokens_to_ids("<end_of_utterance>"),
           "image": tokenizer.convert_tokens_to_ids("<image>")}
    config = random_config(name, len(tokenizer), ids)
    apply_sizes(config["text_config"], config["vision_config"], sizes, tie=False)
    if sizes:
        config["scale_factor"] = sizes.get("scale_factor", config["scale_factor"])
    _write_processor_files(name, out, config)
    prefix = "SmolVLM" if name == "smolvlm" else "Idefics3"
    model = build_hf_model(getattr(transformers, f"{prefix}Config"),
                           getattr(transformers, f"{prefix}ForConditionalGeneration"), config, seed)
    randomize(model, seed, fast=fast_init)
    if not fast_init:
        decisive_text_weights(model.model.text_model, model.lm_head, [ids["eos"]])
    save_safetensors(model.state_dict(), out)  # module names == published names for these two
    write_json(out / "config.json", config)
    write_json(out / "generation_config.json", {"bos_token_id": ids["bos"], "eos_token_id": ids["eos"],
                                                "pad_token_id": ids["pad"]})
    return out
