"""The lightweight runtime: numpy + a backend; never imports torch or transformers."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from ..errors import BundleError, EdgeVLMError
from ..manifest import read_manifest
from ..processing.tokenizer import Tokenizer
from .results import Delta, GenerationResult, GenerationStats
from .vlm import VLM, Chat

__all__ = ["load", "VLM", "Chat", "Delta", "GenerationResult", "GenerationStats", "open_backend"]


def open_backend(bundle: Path, manifest, device: str = "cpu", **options: Any):
    """The backend that runs this bundle's format."""
    if manifest.format == "onnx":
        from .backends.onnxruntime import OrtBackend

        return OrtBackend(bundle, manifest, device=device, **options)
    if manifest.format == "gguf":
        try:
            from .backends.llamacpp import LlamaCppBackend
        except ImportError as exc:
            raise EdgeVLMError(f"{bundle} is a GGUF bundle, which runs on llama.cpp, but llama-cpp-python is not "
                               f"installed ({exc}). Install it: pip install 'edgevlm[gguf]'.") from None
        return LlamaCppBackend(bundle, manifest, device=device, **options)
    if manifest.format == "coreml":
        if platform.system() != "Darwin":
            raise EdgeVLMError(f"{bundle} is a Core ML bundle, which runs only on macOS/iOS (this is "
                               f"{platform.system()}). Here, export to ONNX or GGUF instead: "
                               "edgevlm export CKPT -o OUT --format onnx|gguf.")
        from .backends.coreml import CoreMLBackend

        return CoreMLBackend(bundle, manifest, device=device, **options)
    raise BundleError(f"{bundle}: unknown bundle format {manifest.format!r}")


def load(bundle: str | Path, device: str = "cpu", verify: bool = True, vision_cache_mb: int = 256,
         **options: Any) -> VLM:
    """Open a bundle: check its manifest and files, start the backend, load the tokenizer."""
    root = Path(bundle)
    manifest = read_manifest(root, verify=verify)
    backend = open_backend(root, manifest, device=device, **options)
    tokenizer = Tokenizer.from_file(root / manifest.tokenizer.get("file", "tokenizer.json"))
    return VLM(root, manifest, backend, tokenizer, vision_cache_bytes=vision_cache_mb << 20)
