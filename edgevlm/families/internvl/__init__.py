"""InternVL 2.5 / 3 (the transformers "-hf" layout): aspect-ratio tiles + a thumbnail, InternViT per tile,
pixel shuffle 0.5, LayerNorm + 2-layer MLP, a Qwen2 (or Llama) text model.

Files: spec.py (processor, layout, chat template: data), reference.py (transformers' model as parts),
vision.py (the one vision forward), mmproj.py (llama.cpp's INTERNVL projector), tiny.py; NOTES.md maps
the reference and llama.cpp code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..contract import BundleSpec, Family
from . import spec

TINY_NAMES = ("internvl",)


class InternVLFamily(Family):
    name = spec.NAME
    folder = "internvl"
    tiny_names = TINY_NAMES
    description = "InternVL 2.5 / 3 -hf (aspect tiles + thumbnail, InternViT, pixel shuffle, MLP, Qwen2 text)"

    def matches(self, config: dict[str, Any]) -> bool:
        return spec.matches(config)

    def bundle_spec(self, ckpt: Path | None, config: dict[str, Any]) -> BundleSpec:
        return spec.bundle_spec(ckpt, config)

    def load_reference(self, ckpt: str | Path, dtype: Any = None):
        from .reference import load_reference

        return load_reference(ckpt, dtype)

    def write_mmproj(self, ref: Any, path: Path, dtype: str = "fp16"):
        from .mmproj import export_mmproj

        return export_mmproj(ref, path, dtype)

    def make_tiny(self, name: str, out: Path, seed: int = 0, **options: Any) -> Path:
        from .tiny import make_tiny

        return make_tiny(name, out, seed, **options)


FAMILY = InternVLFamily()
