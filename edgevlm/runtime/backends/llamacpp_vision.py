"""The vision part of a GGUF bundle (ONNX, run by onnxruntime) behind ``encode_images``.

Some families have no mtmd projector, and mtmd's public API accepts only raw bitmaps that it slices
itself (differently from the reference for small images, techspec §4.5), so GGUF bundles carry the
same ONNX vision part as ONNX bundles and the text model gets the features as embedding rows.
Chunks of one grid run as one batch, cropped to their length (same policy as the onnxruntime backend).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...manifest import Part
from .onnxruntime import open_session
from .ort_vision import encode_chunks


class OnnxVision:
    def __init__(self, bundle: Path, part: Part, vision: Any, threads: int | None = None):
        self.session = open_session(bundle, part, ["CPUExecutionProvider"], threads)
        self.vision, self.derived = vision, part.binding.get("derived_inputs", {})

    def encode(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Processor outputs -> float32 [n_chunks, tokens_per_chunk, hidden]."""
        return encode_chunks(lambda feeds: self.session.run(None, feeds)[0], inputs, self.vision, self.derived)
