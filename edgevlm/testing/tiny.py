"""Tiny deterministic checkpoints in the real Hugging Face layout, for tests, benchmarks and the demo.

``make_tiny(name, out_dir, seed=0, **options)`` asks the family that owns ``name`` (its ``tiny.py``)
to write config.json, model.safetensors (with the published checkpoints' tensor names),
tokenizer.json with the family's special tokens, tokenizer_config.json and the processor files;
transformers' own Auto classes load the families that transformers has.

Options every family takes: ``sizes={"text": {...}, "vision": {...}}`` real-size dims (benchmarks)
and ``fast_init`` (plain normal weights, for speed runs). ``text_model=PATH`` (gemma3) puts a real
Gemma 3 text checkpoint behind the tiny random vision tower (see real_weights.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def make_tiny(name: str, out_dir: str | Path, seed: int = 0, **options: Any) -> Path:
    """Write the tiny checkpoint ``name`` (one of edgevlm.families.TINY_NAMES) to ``out_dir``; returns it."""
    from ..families import FAMILIES, TINY_NAMES

    owner = next((f for f in FAMILIES.values() if name in f.tiny_names), None)
    if owner is None:
        raise ValueError(f"unknown tiny checkpoint {name!r}; choose one of {', '.join(TINY_NAMES)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        return owner.make_tiny(name, out, seed, **options)
    except TypeError as exc:
        raise ValueError(f"make_tiny({name!r}): {exc}") from None
