"""Qwen2-VL and Qwen2.5-VL: a native-resolution ViT with 2-D rotary (2.5: window attention in most
blocks), a 2x2 patch merger, and a Qwen2 text model rotated with three position streams (M-RoPE).

Files: spec.py (processor, layout, chat template: data), reference.py (transformers'
``Qwen2VLForConditionalGeneration`` / ``Qwen2_5_VLForConditionalGeneration`` as parts), vision.py
(the one vision forward over images of one grid), mmproj.py (llama.cpp's QWEN2VL / QWEN25VL
projectors), tiny.py (tiny checkpoints). Preprocessing is edgevlm/processing/native_resolution.py,
the ViT's tables processing/packed_vit.py, the text positions processing/mrope.py. Where each fact
lives in transformers and llama.cpp: NOTES.md.
"""

from __future__ import annotations

from ..contract import Family
from . import spec
from .tiny import TINY_NAMES


class Qwen2VLFamily(Family):
    name = spec.NAME
    folder = "qwen2_vl"
    tiny_names = TINY_NAMES
    description = "Qwen2-VL / Qwen2.5-VL (native-resolution ViT + 2x2 merger, M-RoPE Qwen2 text)"


FAMILY = Qwen2VLFamily()
