"""InternVL 2.5 / 3 (the transformers "-hf" layout): aspect-ratio tiles + a thumbnail, InternViT per tile,
pixel shuffle 0.5, LayerNorm + 2-layer MLP, a Qwen2 (or Llama) text model.

Files: spec.py (processor, layout, chat template: data), reference.py (transformers' model as parts),
vision.py (the one vision forward), mmproj.py (llama.cpp's INTERNVL projector), tiny.py; NOTES.md maps
the reference and llama.cpp code.
"""

from __future__ import annotations

from ..contract import Family
from . import spec

TINY_NAMES = ("internvl",)


class InternVLFamily(Family):
    name = spec.NAME
    folder = "internvl"
    tiny_names = TINY_NAMES
    description = "InternVL 2.5 / 3 -hf (aspect tiles + thumbnail, InternViT, pixel shuffle, MLP, Qwen2 text)"


FAMILY = InternVLFamily()
