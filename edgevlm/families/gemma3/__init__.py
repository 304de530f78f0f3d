"""Gemma 3 vision-language: SigLIP -> 4x4 average pool -> RMSNorm -> projection -> Gemma 3 text.

Files: spec.py (processor, layout, template: data), tiny.py (tiny checkpoints, optionally with a real
Gemma 3 text model behind the tiny vision tower). The reference is transformers'
``Gemma3ForConditionalGeneration``, loaded by families/common/hf_vlm.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..contract import Family
from . import spec


class Gemma3Family(Family):
    name = spec.NAME
    folder = "gemma3"
    tiny_names = spec.TINY_NAMES
    description = "Gemma 3 (SigLIP + pooled projector + Gemma 3 text, bidirectional image blocks)"

    def load_reference(self, ckpt: str | Path, dtype: Any = None):
        from transformers import Gemma3Config, Gemma3ForConditionalGeneration

        from ..common.hf_vlm import load_hf_reference

        return load_hf_reference(ckpt, Gemma3Config, Gemma3ForConditionalGeneration, self.name, "gemma3", dtype)


FAMILY = Gemma3Family()
