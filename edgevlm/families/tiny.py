"""Tiny deterministic checkpoints in the real Hugging Face layout, for tests and the offline demo.

``make_tiny(name, out_dir, seed=0, text_model=None)`` writes config.json, model.safetensors (with the
published checkpoints' tensor names), tokenizer.json with the family's special tokens,
tokenizer_config.json, and the processor files. PaliGemma and Gemma 3 directories load with
transformers' ``AutoProcessor`` / ``AutoModelForImageTextToText`` like a published checkpoint.

``text_model=PATH`` (gemma3 only) puts a real Gemma 3 text checkpoint (e.g. Gemma 3 270M, see
``real_weights.py``) behind the tiny random vision tower: the language half is then real.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import torch

from . import TINY_NAMES
from .tiny_tokenizer import build_tokenizer

MINICPMV_IMAGE_TOKENS = ["<unk>", "<image>", "</image>", "<slice>", "</slice>", "<image_id>", "</image_id>",
                         "<ref>", "</ref>", "<box>", "</box>", "<quad>", "</quad>", "<point>", "</point>"]
CHATML = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
LLAMA3 = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
GEMMA_BASE = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>"]

# Chat templates (Jinja, as tokenizer_config.json carries them), written for these tiny checkpoints.
CHATML_TEMPLATE = (
    "{% for m in messages %}{% if loop.first and m['role'] != 'system' %}<|im_start|>system\nYou are a helpful "
    "assistant.<|im_end|>\n{% endif %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
LLAMA3_TEMPLATE = (
    "<|begin_of_text|>{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] | trim }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant"
    "<|end_header_id|>\n\n{% endif %}")
GEMMA3_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] | trim }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<start_of_image>{% elif c['type'] == 'text' %}{{ c['text'] | trim }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")


def make_tiny(name: str, out_dir: str | Path, seed: int = 0, text_model: str | Path | None = None) -> Path:
    """Write the tiny checkpoint ``name`` (one of TINY_NAMES) to ``out_dir`` and return the path."""
    if name in ("llava", "llava-next", "llava-onevision"):  # not in TINY_NAMES until LLaVA exports (issue 20)
        from .llava.tiny import make_llava_tiny

        return make_llava_tiny(name, out_dir, seed)
    if name not in TINY_NAMES:
        raise ValueError(f"unknown tiny checkpoint {name!r}; choose one of {', '.join(TINY_NAMES)}")
    if text_model is not None and name != "gemma3":
        raise ValueError("text_model is supported for 'gemma3' only")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if name.startswith("minicpmv-"):
        _make_minicpmv(float(name.split("-")[1]), out, seed)
    elif name.startswith("paligemma"):
        _make_paligemma(2 if name == "paligemma2" else 1, out, seed)
    else:
        _make_gemma3(out, seed, Path(text_model) if text_model else None)
    return out


def randomize_(module: torch.nn.Module, seed: int, skip: tuple[str, ...] = ()) -> None:
    """Deterministic weights with peaky logits (so greedy decoding has clear winners in parity tests)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in sorted(module.state_dict().items()):
            if not tensor.is_floating_point() or any(name.startswith(s) for s in skip):
                continue
            noise = torch.randn(tensor.shape, generator=gen)
            if tensor.ndim == 1:
                value = 1.0 + 0.1 * noise if ("norm" in name or ".ln" in name) else 0.02 * noise
            elif "embed_tokens" in name:
                value = 0.2 * noise  # Gemma scales these by sqrt(hidden); larger makes tied models echo
            elif "position_embedding" in name or name.endswith("query"):
                value = 0.5 * noise
            else:
                # Strong layer outputs keep tied-embedding models from just repeating their input token.
                scale = 3.0 if ("lm_head" in name or "o_proj" in name or "down_proj" in name) else 1.0
                value = noise * scale / math.sqrt(math.prod(tensor.shape[1:]))
            tensor.copy_(value.to(tensor.dtype))


def _save_safetensors(tensors: dict[str, torch.Tensor], out: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out / "model.safetensors"),
              metadata={"format": "pt"})


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _make_minicpmv(version: float, out: Path, seed: int) -> None:
    from .minicpmv import MiniCPMV, random_config

    llama3 = version == 2.5  # 4.0 has a Llama-architecture LLM but ChatML tokens (<|im_end|>)
    specials = (LLAMA3 if llama3 else CHATML) + MINICPMV_IMAGE_TOKENS + (["<think>", "</think>"] if version >= 4.5 else [])
    tok = build_tokenizer("bytelevel", specials)
    tok.save(str(out / "tokenizer.json"))
    ids = {t: tok.token_to_id(t) for t in specials}
    bos, eos = (("<|begin_of_text|>", "<|eot_id|>") if llama3 else ("<|im_start|>", "<|im_end|>"))
    config = random_config(version, tok.get_vocab_size(),
                           {"bos_token_id": ids[bos], "eos_token_id": ids[eos], "pad_token_id": ids[specials[1]]})
    _write_json(out / "config.json", config)
    model = MiniCPMV(config)
    randomize_(model, seed)
    _save_safetensors(model.state_dict(), out)
    _write_json(out / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": bos, "eos_token": eos, "unk_token": "<unk>",
        "pad_token": specials[1], "add_bos_token": llama3, "model_max_length": 2048,
        "chat_template": LLAMA3_TEMPLATE if llama3 else CHATML_TEMPLATE})
    _write_json(out / "preprocessor_config.json", {
        "image_processor_type": "MiniCPMVImageProcessor", "auto_map": {}, "max_slice_nums": 9,
        "scale_resolution": 448, "patch_size": 14, "use_image_id": version >= 2.6,
        "image_feature_size": config["query_num"], "im_start": "<image>", "im_end": "</image>",
        "slice_start": "<slice>", "slice_end": "</slice>", "unk": "<unk>", "im_id_start": "<image_id>",
        "im_id_end": "</image_id>", "slice_mode": True, "norm_mean": [0.5, 0.5, 0.5], "norm_std": [0.5, 0.5, 0.5],
        "version": version})
    _write_json(out / "generation_config.json", {"bos_token_id": ids[bos], "eos_token_id": ids[eos]})


def _gemma_tokenizer(specials: list[str], **extra: Any):
    from transformers import GemmaTokenizer

    tok = build_tokenizer("sentencepiece", specials)
    return GemmaTokenizer(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", unk_token="<unk>",
                          pad_token="<pad>", mask_token="<mask>", **extra)


def _save_vlm(model: torch.nn.Module, out: Path, config: dict[str, Any], seed: int,
              real_text: dict[str, torch.Tensor] | None = None) -> None:
    from .hf_vlm import module_to_hub

    randomize_(model, seed, skip=("model.language_model.",) if real_text else ())
    tensors = {module_to_hub(k): v for k, v in model.state_dict().items()
               if not (k == "lm_head.weight" and config["text_config"].get("tie_word_embeddings", True))}
    if real_text:
        tensors = {k: v for k, v in tensors.items() if not k.startswith("language_model.")}
        tensors.update({"language_model." + k: v for k, v in real_text.items() if k != "lm_head.weight"})
    _save_safetensors(tensors, out)
    _write_json(out / "config.json", config)


def _make_paligemma(version: int, out: Path, seed: int) -> None:
    from transformers import (PaliGemmaConfig, PaliGemmaForConditionalGeneration, PaliGemmaProcessor,
                              SiglipImageProcessor)

    from .paligemma import random_config

    specials = GEMMA_BASE + ["<image>"] + [f"<loc{i:04d}>" for i in range(1024)] + [f"<seg{i:03d}>" for i in range(128)]
    tokenizer = _gemma_tokenizer(specials, add_bos_token=False, add_eos_token=False)
    image_processor = SiglipImageProcessor(size={"height": 224, "width": 224}, image_mean=[0.5] * 3,
                                           image_std=[0.5] * 3, resample=3)
    image_processor.image_seq_length = 256
    PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(str(out))
    config = random_config(version, len(tokenizer), tokenizer.convert_tokens_to_ids("<image>"))
    torch.manual_seed(seed)
    model = PaliGemmaForConditionalGeneration(PaliGemmaConfig(**{k: v for k, v in config.items()
                                                                 if k not in ("architectures", "model_type")}))
    _save_vlm(model, out, config, seed)
    _write_json(out / "generation_config.json", {"bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0})


def _make_gemma3(out: Path, seed: int, text_model: Path | None) -> None:
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessor, Gemma3Processor

    from .gemma3 import random_config

    image_tokens = {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>"}
    real_text = text_config = None
    if text_model is None:
        tokenizer = _gemma_tokenizer(GEMMA_BASE + list(image_tokens.values()), extra_special_tokens=image_tokens)
    else:
        from transformers import AutoTokenizer

        from .base import load_safetensors_dir, read_config

        tokenizer = AutoTokenizer.from_pretrained(str(text_model), extra_special_tokens=image_tokens)
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
    image_processor = Gemma3ImageProcessor(size={"height": 224, "width": 224}, image_mean=[0.5] * 3,
                                           image_std=[0.5] * 3, resample=2, do_pan_and_scan=False)
    Gemma3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_length=16,
                    chat_template=GEMMA3_TEMPLATE).save_pretrained(str(out))
    ids = {k: tokenizer.convert_tokens_to_ids(v) for k, v in
           (("boi", "<start_of_image>"), ("eoi", "<end_of_image>"), ("image", "<image_soft_token>"))}
    config = random_config(len(tokenizer), ids, text_config)
    torch.manual_seed(seed)
    model = Gemma3ForConditionalGeneration(Gemma3Config(**{k: v for k, v in config.items()
                                                           if k not in ("architectures", "model_type")}))
    _save_vlm(model, out, config, seed, real_text)
    eos = [tokenizer.convert_tokens_to_ids(t) for t in ("<eos>", "<end_of_turn>")]
    _write_json(out / "generation_config.json", {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": eos,
                                                 "pad_token_id": tokenizer.pad_token_id})


def copy_tokenizer_files(src: Path, dst: Path) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (src / name).exists():
            shutil.copy(src / name, dst / name)
