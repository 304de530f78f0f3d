"""LLaVA 1.5, LLaVA-NeXT (1.6) and LLaVA-OneVision: a CLIP or SigLIP tower, a 2-layer GELU MLP, a Llama or
Qwen2 text model; NeXT and OneVision tile images ("anyres", edgevlm/processing/anyres*.py).

Files: spec.py (processor, layout, chat template: data), reference.py (transformers' own model as a
ReferenceVLM), vision.py (the one vision forward: tiles -> projected features), mmproj.py (llama.cpp's
``mlp`` projector), tiny.py (tiny checkpoints). NOTES.md: file:line pointers into transformers and
llama.cpp, and what was measured.
"""

from __future__ import annotations

from ..contract import Family
from . import spec


class LlavaFamily(Family):
    name = spec.NAME
    folder = "llava"
    tiny_names = spec.TINY_NAMES
    description = "LLaVA 1.5 / NeXT / OneVision (CLIP or SigLIP + MLP projector + Llama / Qwen2, anyres tiles)"


FAMILY = LlavaFamily()
