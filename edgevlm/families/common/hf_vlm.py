"""Glue shared by the families whose reference lives in transformers (PaliGemma, Gemma 3, Idefics3, InternVL).

They are ``*ForConditionalGeneration`` models with a vision tower, a projector and a text model,
stored on the Hub in the "llava" key layout (``vision_tower.*``, ``multi_modal_projector.*``,
``language_model.model.*``; Idefics3 / SmolVLM publish transformers' module names). The loader here reads config.json and the safetensors itself and maps
those names onto transformers' modules, so that a test can compare it with transformers' own
``from_pretrained``: the two must give the same logits.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .reference import ReferenceVLM, TextSpec, load_safetensors_dir, load_weights, read_config

# Hub checkpoint name -> transformers 5 module name (first match wins).
HUB_TO_MODULE = [
    (r"^language_model\.lm_head\.", "lm_head."),
    (r"^language_model\.model\.", "model.language_model."),
    (r"^vision_tower\.", "model.vision_tower."),
    (r"^multi_modal_projector\.", "model.multi_modal_projector."),
]


def hub_to_module(name: str) -> str:
    for pattern, target in HUB_TO_MODULE:
        if re.match(pattern, name):
            return re.sub(pattern, target, name)
    return name


def module_to_hub(name: str) -> str:
    """The inverse of hub_to_module (used to write tiny checkpoints in the published layout)."""
    for prefix, hub in (("lm_head.", "language_model.lm_head."), ("model.language_model.", "language_model.model."),
                        ("model.vision_tower.", "vision_tower."),
                        ("model.multi_modal_projector.", "multi_modal_projector.")):
        if name.startswith(prefix):
            return hub + name[len(prefix):]
    return name


class CausalLMView(nn.Module):
    """The text half as a causal LM over inputs_embeds, sharing the VLM's modules (no copies).

    ``model`` is the Gemma text model, ``lm_head`` the (tied) output projection; final logit
    soft-capping (Gemma 2) is applied as the text config asks.
    """

    def __init__(self, text_model: nn.Module, lm_head: nn.Module, text_config: Any):
        super().__init__()
        self.model = text_model
        self.lm_head = lm_head
        self.config = text_config

    def get_input_embeddings(self) -> nn.Module:
        return self.model.embed_tokens

    def forward(self, inputs_embeds: torch.Tensor, attention_mask=None, position_ids=None, past_key_values=None,
                use_cache: bool = False, **kwargs):
        out = self.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
                         past_key_values=past_key_values, use_cache=use_cache, **kwargs)
        logits = self.lm_head(out.last_hidden_state)
        cap = getattr(self.config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        out.logits = logits
        return out


class TransformersParity:
    """The parity references of a reference that holds transformers' whole model as ``self.hf``."""

    @torch.no_grad()
    def reference_logits(self, **processor_outputs: torch.Tensor) -> torch.Tensor:
        """transformers' own forward on the processor's outputs (the parity reference): [B, T, vocab]."""
        return self.hf(**processor_outputs).logits

    @torch.no_grad()
    def reference_generate(self, max_new_tokens: int, **processor_outputs: torch.Tensor) -> list[int]:
        """transformers' own greedy ``generate``; returns only the new tokens."""
        prompt_len = processor_outputs["input_ids"].shape[1]
        out = self.hf.generate(**processor_outputs, max_new_tokens=max_new_tokens, do_sample=False)
        return out[0, prompt_len:].tolist()


class HFVisionLanguageModel(TransformersParity, ReferenceVLM):
    """A transformers *ForConditionalGeneration model seen through the ReferenceVLM parts."""

    model_class_name: str = ""

    def __init__(self, hf_model: nn.Module, family: str, arch: str, position_offset: int = 0):
        super().__init__()
        self.hf = hf_model
        self.family = family
        self.position_offset = position_offset
        cfg = hf_model.config
        self.language_model = CausalLMView(self.text_model(), hf_model.lm_head, cfg.text_config)
        self.text = TextSpec.from_config(arch, cfg.text_config)
        self.image_token_id = cfg.image_token_id

    def text_model(self) -> nn.Module:
        """The decoder stack (``model.language_model``; Idefics3 / SmolVLM call it ``model.text_model``)."""
        model = self.hf.model
        return model.language_model if hasattr(model, "language_model") else model.text_model

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] normalised pixels -> [B, tokens_per_image, hidden]."""
        out = self.hf.model.get_image_features(pixel_values)
        return getattr(out, "pooler_output", out)

    def embed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.text_model().embed_tokens(input_ids)  # Gemma: scaled by sqrt(hidden) inside

    def vision_graph(self):
        from .vision_graph import fixed_image_graph

        return fixed_image_graph(self, self.hf.config.vision_config.image_size)



def load_hf_reference(ckpt: str | Path, config_class: Any, model_class: Any, family: str, arch: str,
                      dtype: torch.dtype | None = None, position_offset: int = 0,
                      view: type[HFVisionLanguageModel] = HFVisionLanguageModel) -> HFVisionLanguageModel:
    """``view``: the family's subclass when its parts differ (its own vision graph, image features)."""
    raw = read_config(ckpt)
    fields = {k: v for k, v in raw.items() if k not in ("architectures", "model_type", "transformers_version")}
    config = config_class(**fields)
    config._attn_implementation = "eager"
    config.text_config._attn_implementation = "eager"
    config.vision_config._attn_implementation = "eager"
    model = model_class(config)
    tensors = {hub_to_module(k): v for k, v in load_safetensors_dir(ckpt).items()}
    load_weights(model, tensors, str(ckpt))
    return view(model.to(dtype or torch.float32).eval(), family, arch, position_offset)
