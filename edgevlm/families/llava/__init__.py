"""LLaVA 1.5, LLaVA-NeXT (1.6) and LLaVA-OneVision: a CLIP or SigLIP tower, a 2-layer GELU MLP, a Llama or
Qwen2 text model; NeXT and OneVision tile images ("anyres", edgevlm/processing/anyres*.py).

Files: spec.py (processor, layout, chat template: data), reference.py (transformers' own model as a
ReferenceVLM), vision.py (the one vision forward: tiles -> projected features), mmproj.py (llama.cpp's
``mlp`` projector), tiny.py (tiny checkpoints). NOTES.md: file:line pointers into transformers and
llama.cpp, and what was measured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..contract import BundleSpec, Family
from . import spec


class LlavaFamily(Family):
    name = spec.NAME
    folder = "llava"
    tiny_names = spec.TINY_NAMES
    description = "LLaVA 1.5 / NeXT / OneVision (CLIP or SigLIP + MLP projector + Llama / Qwen2, anyres tiles)"

    def matches(self, config: dict[str, Any]) -> bool:
        return spec.matches(config)

    def bundle_spec(self, ckpt: Path | None, config: dict[str, Any]) -> BundleSpec:
        return spec.bundle_spec(ckpt, config)

    def load_reference(self, ckpt: str | Path, dtype: Any = None):
        from .reference import load_reference

        return load_reference(ckpt, dtype)

    def write_mmproj(self, ref: Any, path: Path, dtype: str = "fp16"):
        from .mmproj import write_mmproj

        return write_mmproj(ref, path, dtype)

    def make_tiny(self, name: str, out: Path, seed: int = 0, **options: Any) -> Path:
        from .tiny import make_tiny

        return make_tiny(name, out, seed, **options)


FAMILY = LlavaFamily()
