"""The SmolVLM / Idefics3 PyTorch reference: transformers' own model (float32, eager) seen as parts.

* ``image_features``: tiles ``[n, 3, T, T]`` -> ``[n, tokens_per_tile, hidden]`` through transformers'
  ``get_image_features`` (SigLIP tower with bucketed positions, pixel shuffle, modality projection);
  tiles are independent, so any batch of them gives the same rows.
* ``vision_graph``: the one export forward (vision.py), a fixed-size image part of tile size.
* ``embed_tokens`` / ``language_model``: the Llama (SmolLM2) text model, no embedding scale.
The weights are published under transformers' module names (``model.vision_model.*``,
``model.connector.*``, ``model.text_model.*``, ``lm_head.weight``), so they load as they are.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..common.hf_vlm import HFVisionLanguageModel, load_hf_reference
from .spec import NAME


class Idefics3Reference(HFVisionLanguageModel):
    @torch.no_grad()
    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[n, 3, T, T] normalised tiles -> [n, tokens_per_tile, hidden]."""
        out = self.hf.model.get_image_features(pixel_values[None])  # the model takes [batch, images, 3, T, T]
        rows = torch.cat(list(out.pooler_output))  # [n * tokens, hidden]
        return rows.reshape(pixel_values.shape[0], -1, rows.shape[-1])

    def vision_graph(self):
        from .vision import vision_graph

        return vision_graph(self)


def load_reference(ckpt: str | Path, dtype: torch.dtype | None = None) -> Idefics3Reference:
    import transformers

    from ...text_archs import arch_of_model_type
    from ..common.reference import read_config

    config = read_config(ckpt)
    prefix = "SmolVLM" if config["model_type"] == "smolvlm" else "Idefics3"  # the same design, two class names
    arch = arch_of_model_type(config.get("text_config", {}).get("model_type", "llama"))
    ref = load_hf_reference(ckpt, getattr(transformers, f"{prefix}Config"),
                            getattr(transformers, f"{prefix}ForConditionalGeneration"), NAME, arch, dtype,
                            view=Idefics3Reference)
    ref.checkpoint = Path(ckpt)  # the processor files (mmproj header: normalisation, tiling)
    return ref
