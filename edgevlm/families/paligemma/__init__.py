"""PaliGemma 1 / 2: SigLIP -> linear projector -> Gemma / Gemma 2, prefix-LM attention.

Files: spec.py (processor, layout, template: data), tiny.py (tiny checkpoints). The reference is
transformers' ``PaliGemmaForConditionalGeneration``, loaded by families/common/hf_vlm.py. llama.cpp
has no PaliGemma projector, so GGUF bundles carry the ONNX vision part only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..contract import Family
from . import spec


class PaliGemmaFamily(Family):
    name = spec.NAME
    folder = "paligemma"
    tiny_names = spec.TINY_NAMES
    description = "PaliGemma 1 / 2 (SigLIP + linear projector + Gemma / Gemma 2, prefix-LM)"

    def load_reference(self, ckpt: str | Path, dtype: Any = None):
        from transformers import PaliGemmaConfig, PaliGemmaForConditionalGeneration

        from ...text_archs import arch_of_model_type
        from ..common.hf_vlm import load_hf_reference
        from ..common.reference import read_config

        arch = arch_of_model_type((read_config(ckpt).get("text_config") or {}).get("model_type", "gemma"))
        # transformers: "Paligemma positions are 1-indexed"
        return load_hf_reference(ckpt, PaliGemmaConfig, PaliGemmaForConditionalGeneration, self.name, arch, dtype,
                                 position_offset=1)


FAMILY = PaliGemmaFamily()
