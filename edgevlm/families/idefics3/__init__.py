"""SmolVLM / Idefics3: square tiles + a global image, SigLIP per tile, pixel shuffle, one linear projection,
a Llama (SmolLM2) text model.

SmolVLM (``SmolVLMForConditionalGeneration``) and Idefics3 (``Idefics3ForConditionalGeneration``) are the
same design in transformers; this folder serves both (manifest family "idefics3"). Files: spec.py
(processor, layout, chat template: data), reference.py (transformers' model as parts), vision.py (the one
vision forward), mmproj.py (llama.cpp's IDEFICS3 projector), tiny.py; NOTES.md maps the reference and
llama.cpp code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..contract import BundleSpec, Family
from . import spec

TINY_NAMES = ("smolvlm", "idefics3")


class Idefics3Family(Family):
    name = spec.NAME
    folder = "idefics3"
    tiny_names = TINY_NAMES
    description = "SmolVLM / Idefics3 (square tiles + global image, SigLIP, pixel shuffle, Llama text)"

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


FAMILY = Idefics3Family()
