"""The lightweight runtime: numpy + a backend; never imports torch or transformers."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from ..errors import EdgeVLMError
from ..formats import get_format, resolve
from ..manifest import inside, read_manifest
from ..processing.tokenizer import Tokenizer
from .results import Delta, GenerationResult, GenerationStats
from .vlm import VLM, Chat

__all__ = ["load", "VLM", "Chat", "Delta", "GenerationResult", "GenerationStats", "open_backend"]


def open_backend(bundle: Path, manifest, device: str = "cpu", **options: Any):
    """The backend that runs this bundle's format (edgevlm/formats.py)."""
    fmt = get_format(manifest.format)
    if fmt.name == "coreml" and platform.system() != "Darwin" and "models" not in options:
        raise EdgeVLMError(f"{bundle} is a Core ML bundle, which runs only on macOS/iOS (this is "
                           f"{platform.system()}). Here, export to ONNX or GGUF instead: "
                           "edgevlm export CKPT -o OUT --format onnx|gguf.")
    try:
        backend_class = resolve(fmt.backend)
    except ImportError as exc:
        raise EdgeVLMError(f"{bundle} is a {fmt.name} bundle, whose runtime library is not installed ({exc}). "
                           f"Install it: {fmt.install}.") from None
    return backend_class(bundle, manifest, device=device, **options)


def load(bundle: str | Path, device: str = "cpu", verify: bool = True, vision_cache_mb: int = 256,
         **options: Any) -> VLM:
    """Open a bundle: check its manifest and files, start the backend, load the tokenizer."""
    root = Path(bundle)
    manifest = read_manifest(root, verify=verify)
    backend = open_backend(root, manifest, device=device, **options)
    tokenizer = Tokenizer.from_file(inside(root, manifest.tokenizer.file, "tokenizer file"))
    return VLM(root, manifest, backend, tokenizer, vision_cache_bytes=vision_cache_mb << 20)
