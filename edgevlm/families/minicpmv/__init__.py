"""MiniCPM-V 2.5 / 2.6 / 4.0 / 4.5: navit SigLIP -> perceiver resampler -> Llama 3 / Qwen 2 / Qwen 3 text.

Files: spec.py (versions, processor, layout, chat template: data), reference.py (the PyTorch
reference, ours since upstream is remote code), vision.py (the one vision forward), resampler.py,
mmproj.py (llama.cpp's ``resampler`` projector), tiny.py (tiny checkpoints).
"""

from __future__ import annotations

from ..contract import Family
from . import spec


class MiniCPMVFamily(Family):
    name = spec.NAME
    folder = "minicpmv"
    tiny_names = spec.TINY_NAMES
    description = "MiniCPM-V 2.5 / 2.6 / 4.0 / 4.5 (navit SigLIP + resampler)"


FAMILY = MiniCPMVFamily()
