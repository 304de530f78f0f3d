"""What every family's tiny-checkpoint maker shares: deterministic weights, safetensors, JSON, chat templates.

A family's ``tiny.py`` holds its tiny config and writes its files with these helpers; ``sizes``
(benchmarks/models.py) swaps the tiny dims for real-size ones so the same writer produces a
real-size random checkpoint in the published layout.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

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


def randomize(module: torch.nn.Module, seed: int, skip: tuple[str, ...] = (), fast: bool = False) -> None:
    """Deterministic weights with peaky logits (so greedy decoding has clear winners in parity tests).

    ``fast``: plain normal(0, 0.02) in place, ~3x faster at 1B parameters, for speed benchmarks where
    the values do not matter, only that they are finite and not all zero.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in sorted(module.state_dict().items()):
            if not tensor.is_floating_point() or any(name.startswith(s) for s in skip):
                continue
            if fast:
                tensor.normal_(0.0, 0.02, generator=gen)
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


def apply_sizes(text: dict[str, Any], vision: dict[str, Any], sizes: dict[str, Any] | None, tie: bool) -> None:
    """Real-size dims for a benchmark checkpoint: ``sizes = {"text": {...}, "vision": {...}}`` (in place)."""
    if not sizes:
        return
    tokenizer_vocab = text.get("vocab_size", 0)
    text.update(sizes.get("text", {}))
    text["vocab_size"] = max(sizes.get("text", {}).get("vocab_size", 0), tokenizer_vocab)
    text["tie_word_embeddings"] = tie
    vision.update(sizes.get("vision", {}))


def save_safetensors(tensors: dict[str, torch.Tensor], out: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out / "model.safetensors"),
              metadata={"format": "pt"})


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def gemma_tokenizer(specials: list[str], **extra: Any):
    """A tiny SentencePiece-style BPE as transformers' GemmaTokenizer (PaliGemma, Gemma 3)."""
    from transformers import GemmaTokenizer

    from .tiny_tokenizer import build_tokenizer

    tok = build_tokenizer("sentencepiece", specials)
    return GemmaTokenizer(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", unk_token="<unk>",
                          pad_token="<pad>", mask_token="<mask>", **extra)


def save_hf_vlm(model: torch.nn.Module, out: Path, config: dict[str, Any], seed: int, fast: bool = False,
                real_text: dict[str, torch.Tensor] | None = None) -> None:
    """Random weights in the published "llava" key layout (``vision_tower.*``, ``language_model.model.*``);
    ``real_text`` (a text-only checkpoint's tensors) replaces the language model's."""
    from ..families.common.hf_vlm import module_to_hub

    randomize(model, seed, skip=("model.language_model.",) if real_text else (), fast=fast)
    tensors = {module_to_hub(k): v for k, v in model.state_dict().items()
               if not (k == "lm_head.weight" and config["text_config"].get("tie_word_embeddings", True))}
    if real_text:
        tensors = {k: v for k, v in tensors.items() if not k.startswith("language_model.")}
        tensors.update({"language_model." + k: v for k, v in real_text.items() if k != "lm_head.weight"})
    save_safetensors(tensors, out)
    write_json(out / "config.json", config)


def build_hf_model(config_class: Any, model_class: Any, config: dict[str, Any], seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return model_class(config_class(**{k: v for k, v in config.items() if k not in ("architectures", "model_type")}))


def decisive_text_weights(text_model: torch.nn.Module, lm_head: torch.nn.Module, quiet_ids: list[int]) -> None:
    """Make a tiny randomized text model write varied text, so a 32-token greedy comparison tests something.

    With ``randomize``'s weights, a long image prompt makes every attention head average the whole
    context; that mean barely changes from one step to the next, so greedy decoding repeats one token
    (measured: 32 x the same id for the tiny SmolVLM, Idefics3 and InternVL). Queries and keys x3 make
    attention pick a few positions (which change with every RoPE step), so each token depends on the
    ones it picks: 24-31 distinct ids in 32 steps. ``quiet_ids`` (the end-of-turn tokens) get a zero
    output row (tied: also a zero embedding), so a comparison is not cut short after a few tokens.
    """
    with torch.no_grad():
        for layer in text_model.layers:
            layer.self_attn.q_proj.weight.mul_(3.0)
            layer.self_attn.k_proj.weight.mul_(3.0)
        for token in quiet_ids:
            lm_head.weight[token] = 0.0
