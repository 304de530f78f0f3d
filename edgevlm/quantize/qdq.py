"""Static QDQ quantization with calibration images, for NPU execution providers (QNN wants QDQ).

The calibration set is a folder of images (and a prompts.txt, kept for the decoder once it is
supported). Calibration inputs are recorded from the source bundle's own runtime, so they are exactly
what the part sees at inference (slices batched by size, derived position inputs included).
``qdq8`` = uint8 activations / uint8 weights; ``qdq16`` = uint16 activations / uint8 weights (QNN's
A16W8, the accurate choice on Hexagon). Only the vision part is supported: the decoder's KV-cache
I/O is driven through IO binding, and NPUs are used for the vision encoder in practice (perf.md:
ViT on QNN, LLM on the CPU); recipes give the decoder weight-only int8 instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EdgeVLMError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


class Calibration:
    """Records the feeds a part receives while the source bundle encodes the calibration images."""

    def __init__(self, source_bundle: Path, folder: str | Path):
        self.source = Path(source_bundle)
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise EdgeVLMError(f"calibration folder {self.folder} does not exist: give a folder of images "
                               "(and optionally prompts.txt)")
        self.images = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.images:
            raise EdgeVLMError(f"calibration folder {self.folder} has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")

    def vision_feeds(self) -> list[dict[str, np.ndarray]]:
        from ..processing.images import load_image
        from ..runtime import load
        from ..runtime.images import prepare_image

        vlm = load(self.source)
        recorded: list[dict[str, np.ndarray]] = []
        session = vlm.backend.vision

        class Recorder:  # stands in for the vision session, remembering every feed
            def run(self, outputs, feeds):
                recorded.append({k: np.array(v) for k, v in feeds.items()})
                return session.run(outputs, feeds)

        vlm.backend.vision = Recorder()
        try:
            for path in self.images:
                vlm.backend.encode_images(prepare_image(load_image(path), vlm.processor).inputs)
        finally:
            vlm.backend.vision = session
            vlm.close()
        return recorded


def quantize_qdq(src: Path, dst: Path, method: str, calibration: Calibration, part: str) -> dict[str, Any]:
    if part != "vision":
        raise EdgeVLMError(f"{method} (static QDQ) is supported for the vision part only; give the {part} "
                           f"another method, e.g. --{part} w8")
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    feeds = calibration.vision_feeds()

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(feeds)

        def get_next(self):
            return next(self.items, None)

    activations = QuantType.QUInt16 if method == "qdq16" else QuantType.QUInt8
    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, activation_type=activations,
                    weight_type=QuantType.QUInt8, per_channel=True,
                    extra_options={"ActivationSymmetric": False, "WeightSymmetric": False})
    return {"activations": activations.name, "weights": "QUInt8 per channel", "calibration_images": len(calibration.images),
            "calibration_batches": len(feeds)}
