"""MiniCPM-V 4.6 and 4.7: navit SigLIP with a window-attention merger and a merger MLP, and a Qwen3.5
hybrid text model (Gated DeltaNet linear-attention layers and gated full-attention layers).

transformers ships both natively (``models/minicpmv4_6``, ``models/minicpmv4_7``): reference.py wraps
them; vision.py is the one vision forward the exporters write; mmproj.py writes llama.cpp's
``minicpmv4_6`` projector; tiny.py makes tiny checkpoints; spec.py is the data (processor kind
``slice_merge``, layout, template). NOTES.md says what the exporters and the runtime must honour.
Importing this package imports no torch.
"""

from __future__ import annotations

from ..contract import Family
from . import spec
from .tiny import TINY_NAMES


class MiniCPMV46Family(Family):
    name = spec.NAME
    folder = "minicpmv4_6"
    tiny_names = TINY_NAMES
    description = "MiniCPM-V 4.6 / 4.7 (navit SigLIP + window merger, Qwen3.5 hybrid text)"


FAMILY = MiniCPMV46Family()
