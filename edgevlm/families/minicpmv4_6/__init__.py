"""MiniCPM-V 4.6 and 4.7: navit SigLIP with a window-attention merger, a merger MLP, and a Qwen3.5
hybrid text model (Gated DeltaNet linear-attention layers and gated full-attention layers).

transformers ships both natively (``models/minicpmv4_6``, ``models/minicpmv4_7``); NOTES.md says
what the exporters and the runtime must honour, with pointers into transformers and llama.cpp.
Importing this package imports no torch.
"""

from __future__ import annotations

from typing import Any

# model_type in config.json -> the version name used by make_tiny ("minicpmv-4.6" / "minicpmv-4.7")
MODEL_TYPES = {"minicpmv4_6": "4.6", "minicpmv4_7": "4.7"}
DOWNSAMPLE_MODES = {"16x": 16, "4x": 4}  # mode -> vision patches per LLM token


def matches(config: dict[str, Any]) -> bool:
    return config.get("model_type") in MODEL_TYPES
