"""The SmolVLM / Idefics3 PyTorch reference seen as parts (transformers' own modules, float32, eager).

* ``image_features``: preprocessed tiles ``[n, 3, T, T]`` -> ``[n, tokens_per_tile, hidden]`` through
  ``model.get_image_features`` (SigLIP-style tower with its bucketised positions, pixel shuffle,
  modality projection); tiles are independent, so any batch of them gives the same rows.
* ``embed_tokens``: the text model's embedding table (Llama: no scale).
* ``language_model``: the Llama text model + lm_head over ``inputs_embeds``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..base import ReferenceVLM, TextSpec
from ..hf_vlm import CausalLMView


class Idefics3Reference(ReferenceVLM):
    attention = "causal"

    def __init__(self, hf_model: torch.nn.Module):
        super().__init__()
        self.hf = hf_model
        cfg = hf_model.config
        self.family = cfg.model_type  # "smolvlm" | "idefics3"
        self.language_model = CausalLMView(hf_model.model.text_model, hf_model.lm_head, cfg.text_config)
        self.text = TextSpec.from_config("llama", cfg.text_config)
        self.image_token_id = cfg.image_token_id

    @torch.no_grad()
    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[n, 3, T, T] normalised tiles -> [n, tokens_per_tile, hidden]."""
        out = self.hf.model.get_image_features(pixel_values[None])  # the model takes [batch, images, 3, T, T]
        rows = torch.cat(list(out.pooler_output))  # [n * tokens, hidden]
        return rows.reshape(pixel_values.shape[0], -1, rows.shape[-1])

    def embed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.hf.model.text_model.embed_tokens(input_ids)


def load_reference(ckpt: str | Path, dtype: torch.dtype = torch.float32) -> Idefics3Reference:
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(str(ckpt), dtype=dtype, attn_implementation="eager")
    return Idefics3Reference(model.eval())
