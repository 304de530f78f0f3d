"""Model families: one file each. ``family_for(ckpt)`` picks the one whose config matches.

Importing this package imports no torch; the family modules import it when a reference is loaded.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from ..errors import CheckpointError

FAMILY_MODULES = ("minicpmv", "paligemma", "gemma3")
TINY_NAMES = ("minicpmv-2.5", "minicpmv-2.6", "minicpmv-4.5", "paligemma", "paligemma2", "gemma3",
              "smolvlm", "idefics3", "internvl")


def family_module(name: str) -> ModuleType:
    if name not in FAMILY_MODULES:
        raise CheckpointError(f"unknown family {name!r}; edgevlm knows {', '.join(FAMILY_MODULES)}.")
    return importlib.import_module(f"{__name__}.{name}")


def family_for(ckpt: str | Path) -> ModuleType:
    """The family module whose ``matches(config)`` accepts the checkpoint's config.json."""
    import json

    path = Path(ckpt) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{ckpt}: no config.json, so this is not a Hugging Face checkpoint directory. "
                              "Pass the directory that holds config.json, *.safetensors and tokenizer.json.")
    config = json.loads(path.read_text(encoding="utf-8"))
    for name in FAMILY_MODULES:
        module = family_module(name)
        if module.matches(config):
            return module
    raise CheckpointError(f"{ckpt}: model_type {config.get('model_type')!r} is not a supported family "
                          f"({', '.join(FAMILY_MODULES)}).")


def load_reference(ckpt: str | Path, dtype=None):
    """The PyTorch reference model of a checkpoint (imports torch and transformers)."""
    import torch

    return family_for(ckpt).load_reference(ckpt, dtype or torch.float32)
