"""Model families: one folder each (``edgevlm/families/<folder>/``), registered here in match order.

``family_for(ckpt)`` returns the ``Family`` (families/contract.py) whose ``matches`` accepts the
checkpoint's config.json. Importing this package imports no torch: a family folder's ``__init__``
holds only data and lazy methods; its reference, vision graph and tiny maker import torch when called.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from ..errors import CheckpointError
from .contract import Family

# match order (the first family whose matches(config) accepts a checkpoint owns it; Qwen2-VL's model_types
# overlap no other family's, so it goes last)
FOLDERS = ("minicpmv4_6", "minicpmv", "paligemma", "gemma3", "idefics3", "internvl", "llava", "qwen2_vl")


def _load(folder: str) -> Family:
    return importlib.import_module(f"{__name__}.{folder}").FAMILY


FAMILIES: dict[str, Family] = {f.name: f for f in map(_load, FOLDERS)}
TINY_NAMES: tuple[str, ...] = tuple(n for f in FAMILIES.values() for n in f.tiny_names)


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise CheckpointError(f"unknown family {name!r}; edgevlm knows {', '.join(FAMILIES)}.")
    return FAMILIES[name]


def read_config(ckpt: str | Path) -> dict:
    path = Path(ckpt) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{ckpt}: no config.json, so this is not a Hugging Face checkpoint directory. "
                              "Pass the directory that holds config.json, *.safetensors and tokenizer.json.")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc}). Re-copy the checkpoint.") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: not a JSON object. Re-copy the checkpoint.")
    return config


def family_for(ckpt: str | Path) -> Family:
    """The family whose ``matches(config)`` accepts the checkpoint's config.json."""
    config = read_config(ckpt)
    for candidate in FAMILIES.values():
        if candidate.matches(config):
            return candidate
    raise CheckpointError(f"{ckpt}: model_type {config.get('model_type')!r} is not a supported family "
                          f"({', '.join(FAMILIES)}).")


def load_reference(ckpt: str | Path, dtype=None):
    """The PyTorch reference model of a checkpoint (imports torch and transformers)."""
    return family_for(ckpt).load_reference(ckpt, dtype)
