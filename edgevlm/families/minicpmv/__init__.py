"""MiniCPM-V 2.5 / 2.6 / 4.0 / 4.5: navit SigLIP -> perceiver resampler -> Llama 3 / Qwen 2 / Qwen 3 text.

Files: spec.py (versions, processor, layout, chat template: data), reference.py (the PyTorch
reference, ours since upstream is remote code), vision.py (the one vision forward), resampler.py,
mmproj.py (llama.cpp's ``resampler`` projector), tiny.py (tiny checkpoints).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..contract import BundleSpec, Family
from . import spec


class MiniCPMVFamily(Family):
    name = spec.NAME
    folder = "minicpmv"
    tiny_names = spec.TINY_NAMES
    description = "MiniCPM-V 2.5 / 2.6 / 4.0 / 4.5 (navit SigLIP + resampler)"

    def matches(self, config: dict[str, Any]) -> bool:
        return spec.matches(config)

    def bundle_spec(self, ckpt: Path | None, config: dict[str, Any]) -> BundleSpec:
        return spec.bundle_spec(config)

    def load_reference(self, ckpt: str | Path, dtype: Any = None):
        from .reference import load_reference

        return load_reference(ckpt, dtype)

    def write_mmproj(self, ref: Any, path: Path, dtype: str = "fp16"):
        from .mmproj import export_mmproj

        return export_mmproj(ref, path, dtype)

    def make_tiny(self, name: str, out: Path, seed: int = 0, **options: Any) -> Path:
        from .tiny import make_tiny

        return make_tiny(name, out, seed, **options)


FAMILY = MiniCPMVFamily()
