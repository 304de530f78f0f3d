"""What one quantization hands its format's quantizer (quantize/onnx_bundle.py, gguf.py, coreml.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


@dataclass
class QuantizeJob:
    src: Path  # the source bundle
    dst: Path  # the new bundle's temporary directory: quantized parts are written here
    manifest: Any  # the source manifest; a quantizer sets each Part's dtype (and files) in place
    recipe: str
    overrides: dict[str, str] = field(default_factory=dict)  # part name -> method
    options: dict[str, Any] = field(default_factory=dict)  # format-specific, checked by formats.check_options
    say: Callable[[str], None] = lambda message: None
