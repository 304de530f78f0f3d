"""SmolVLM / Idefics3: square tiles + a global image, SigLIP per tile, pixel shuffle, one linear projection,
a Llama (SmolLM2) text model.

SmolVLM (``SmolVLMForConditionalGeneration``) and Idefics3 (``Idefics3ForConditionalGeneration``) are the
same design in transformers; this folder serves both (manifest family "idefics3"). Files: spec.py
(processor, layout, chat template: data), reference.py (transformers' model as parts), vision.py (the one
vision forward), mmproj.py (llama.cpp's IDEFICS3 projector), tiny.py; NOTES.md maps the reference and
llama.cpp code.
"""

from __future__ import annotations

from ..contract import Family
from . import spec

TINY_NAMES = ("smolvlm", "idefics3")


class Idefics3Family(Family):
    name = spec.NAME
    folder = "idefics3"
    tiny_names = TINY_NAMES
    description = "SmolVLM / Idefics3 (square tiles + global image, SigLIP, pixel shuffle, Llama text)"


FAMILY = Idefics3Family()
