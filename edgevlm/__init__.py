"""edgevlm: export, quantize and run vision-language models on devices.

``import edgevlm`` and ``edgevlm.load`` import neither torch nor transformers: the runtime needs only
numpy, Pillow, tokenizers and a backend (onnxruntime / llama.cpp / Core ML). ``export`` and
``quantize`` import the heavy libraries when called.
"""

from __future__ import annotations

from typing import Any

from .errors import EdgeVLMError

__version__ = "0.1.0"
__all__ = ["load", "export", "quantize", "serve", "EdgeVLMError", "__version__"]


def load(bundle: str, device: str = "cpu", **options: Any):
    """Load a bundle for inference -> ``edgevlm.runtime.VLM`` (see runtime/vlm.py)."""
    from .runtime import load as _load

    return _load(bundle, device=device, **options)


def export(checkpoint: str, out: str, format: str = "onnx", dtype: str | None = None, **options: Any):
    """Export a Hugging Face checkpoint directory to a bundle -> ``Manifest`` (imports torch)."""
    from .export import export as _export

    return _export(checkpoint, out, format=format, dtype=dtype, **options)


def quantize(bundle: str, out: str, recipe: str = "w4", **options: Any):
    """Write a quantized copy of a bundle -> ``Manifest`` (never in place)."""
    from .quantize import quantize as _quantize

    return _quantize(bundle, out, recipe=recipe, **options)


def serve(bundle: str, host: str = "127.0.0.1", port: int = 8080, **options: Any) -> None:
    """Serve a bundle over an OpenAI-compatible HTTP API until interrupted (edgevlm/serve; needs edgevlm[serve])."""
    from .serve import serve as _serve

    _serve(bundle, host=host, port=port, **options)
