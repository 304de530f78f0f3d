"""The InternVL PyTorch reference: transformers' own ``InternVLForConditionalGeneration`` (float32, eager)
seen as parts.

* ``image_features``: tiles ``[n, 3, T, T]`` -> ``[n, tokens_per_tile, hidden]`` through transformers'
  ``get_image_features`` (InternViT, CLS dropped, pixel shuffle, LayerNorm + MLP projector);
* ``vision_graph``: the one export forward (vision.py), a fixed-size image part of tile size;
* ``embed_tokens`` / ``language_model``: the Qwen2 (or Llama) text model, no embedding scale.
Published -hf weights are in transformers' "llava" layout (``vision_tower.*``, ``multi_modal_projector.*``,
``language_model.model.*``), mapped onto the modules by families/common/hf_vlm.py.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..common.hf_vlm import HFVisionLanguageModel, load_hf_reference
from .spec import NAME


class InternVLReference(HFVisionLanguageModel):
    @torch.no_grad()
    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[n, 3, T, T] normalised tiles -> [n, tokens_per_tile, hidden]."""
        return self.hf.model.get_image_features(pixel_values=pixel_values).pooler_output

    def vision_graph(self):
        from .vision import vision_graph

        return vision_graph(self)


def load_reference(ckpt: str | Path, dtype: torch.dtype | None = None) -> InternVLReference:
    from transformers import InternVLConfig, InternVLForConditionalGeneration

    from ...text_archs import arch_of_model_type
    from ..common.reference import read_config

    arch = arch_of_model_type(read_config(ckpt).get("text_config", {}).get("model_type", "qwen2"))
    ref = load_hf_reference(ckpt, InternVLConfig, InternVLForConditionalGeneration, NAME, arch, dtype,
                            view=InternVLReference)
    ref.checkpoint = Path(ckpt)  # the processor files (mmproj header: normalisation, tiling)
    return ref
