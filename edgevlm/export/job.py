"""What one export hands its format's exporter (the same entry point for onnx/, gguf/ and coreml/)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


@dataclass
class ExportJob:
    ref: Any  # the family's ReferenceVLM (the family contract's reference)
    family: Any  # the Family (families/contract.py)
    checkpoint: Path
    root: Path  # the bundle's temporary directory: parts are written here
    dtype: str  # one spelling: fp32 | fp16
    max_context: int
    options: dict[str, Any] = field(default_factory=dict)  # format-specific, checked by formats.check_options
    say: Callable[[str], None] = lambda message: None
