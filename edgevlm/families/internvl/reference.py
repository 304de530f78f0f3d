"""The InternVL PyTorch reference seen as parts (transformers' own modules, float32, eager).

* ``image_features``: tiles ``[n, 3, T, T]`` -> ``[n, tokens_per_tile, hidden]`` through
  ``model.get_image_features`` (InternViT, CLS dropped, pixel shuffle, LayerNorm + MLP projector).
* ``embed_tokens``: the text model's embedding table (Qwen2 / Llama: no scale).
* ``language_model``: the text model + lm_head over ``inputs_embeds``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..base import ReferenceVLM, TextSpec
from ..hf_vlm import CausalLMView


class InternVLReference(ReferenceVLM):
    family = "internvl"
    attention = "causal"

    def __init__(self, hf_model: torch.nn.Module):
        super().__init__()
        self.hf = hf_model
        cfg = hf_model.config
        self.language_model = CausalLMView(hf_model.model.language_model, hf_model.lm_head, cfg.text_config)
        self.text = TextSpec.from_config(cfg.text_config.model_type, cfg.text_config)  # qwen2 | llama
        self.image_token_id = cfg.image_token_id

    @torch.no_grad()
    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[n, 3, T, T] normalised tiles -> [n, tokens_per_tile, hidden]."""
        return self.hf.model.get_image_features(pixel_values=pixel_values).pooler_output

    def embed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.hf.model.language_model.embed_tokens(input_ids)


def load_reference(ckpt: str | Path, dtype: torch.dtype = torch.float32) -> InternVLReference:
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(str(ckpt), dtype=dtype, attn_implementation="eager")
    return InternVLReference(model.eval())
