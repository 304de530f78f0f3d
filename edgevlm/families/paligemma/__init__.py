"""PaliGemma 1 / 2: SigLIP -> linear projector -> Gemma / Gemma 2, prefix-LM attention.

Files: spec.py (processor, layout, template: data), tiny.py (tiny checkpoints). The reference is
transformers' ``PaliGemmaForConditionalGeneration``, loaded by families/common/hf_vlm.py. llama.cpp
has no PaliGemma projector, so GGUF bundles carry the ONNX vision part only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..contract import BundleSpec, Family
from . import spec


class PaliGemmaFamily(Family):
    name = spec.NAME
    folder = "paligemma"
    tiny_names = spec.TINY_NAMES
    description = "PaliGemma 1 / 2 (SigLIP + linear projector + Gemma / Gemma 2, prefix-LM)"

    def matches(self, config: dict[str, Any]) -> bool:
        return spec.matches(config)

    def bundle_spec(self, ckpt: Path | None, config: dict[str, Any]) -> BundleSpec:
        return spec.bundle_spec(config)

    def load_reference(self, ckpt: str | Path, dtype: Any = None):
        from transformers import PaliGemmaConfig, PaliGemmaForConditionalGeneration

        from ...text_archs import arch_of_model_type
        from ..common.hf_vlm import load_hf_reference
        from ..common.reference import read_config

        arch = arch_of_model_type((read_config(ckpt).get("text_config") or {}).get("model_type", "gemma"))
        # transformers: "Paligemma positions are 1-indexed"
        return load_hf_reference(ckpt, PaliGemmaConfig, PaliGemmaForConditionalGeneration, self.name, arch, dtype,
                                 position_offset=1)

    def make_tiny(self, name: str, out: Path, seed: int = 0, **options: Any) -> Path:
        from .tiny import make_tiny

        return make_tiny(name, out, seed, **options)


FAMILY = PaliGemmaFamily()
