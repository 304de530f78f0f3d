"""What a quantized vision row is worth: its features against the fp32 bundle's, and its kernel.

``reference(model)``: the fp32 bundle's vision features of the benchmark image (compare_vision's image for
the model), computed once in a process of its own, so the fp32 weights never count in a quantized engine's
peak RSS, and cached next to the bundles. ``cosine(features, reference)``: of the whole tensor and the
lowest per token. ``kernel(bundle)``: what the vision part's matmuls run on this CPU (cpu_info.py).

    python benchmarks/vision_features.py MODEL      # writes the reference (what reference() runs)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import models  # noqa: E402


def encoder(bundle: Path, threads: int, batch_patches: int | None = None) -> tuple[Callable[[Any], np.ndarray], Any]:
    """(encode(prepared) -> features [chunks, tokens, hidden], processor config) of a bundle's vision part
    alone, as the runtime runs it (open_session + encode_chunks), so no decoder is loaded.
    ``batch_patches``: patches per vision run (None: the runtime's default, vision_batch.py)."""
    from edgevlm.manifest import read_manifest
    from edgevlm.processing.config import ProcessorConfig
    from edgevlm.runtime.backends.onnxruntime import open_session
    from edgevlm.runtime.backends.ort_vision import encode_chunks
    from edgevlm.runtime.backends.vision_batch import BATCH_PATCHES

    manifest = read_manifest(bundle, verify=False)
    part = manifest.parts["vision"]
    session = open_session(bundle, part, ["CPUExecutionProvider"], threads)
    derived = part.binding.get("derived_inputs", {})

    def encode(prepared: Any) -> np.ndarray:
        return encode_chunks(lambda feeds: session.run(None, feeds)[0], prepared.inputs, manifest.vision, derived,
                             BATCH_PATCHES if batch_patches is None else batch_patches)

    return encode, ProcessorConfig.from_dict(manifest.processor)


def _path(model: str) -> Path:
    return models.CACHE / model / "vision-features-fp32.npy"


def reference(model: str) -> np.ndarray:
    if not _path(model).is_file():
        env = {**os.environ, "EDGEVLM_BENCH_CACHE": str(models.CACHE.parent)}
        subprocess.run([sys.executable, __file__, model], check=True, env=env, capture_output=True)
    return np.load(_path(model))


def cosine(features: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    a = features.reshape(-1, features.shape[-1]).astype(np.float64)  # [chunks * tokens, D]
    b = ref.reshape(-1, ref.shape[-1]).astype(np.float64)
    rows = (a * b).sum(-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-30)
    whole = float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b)))
    return {"feature_cosine_vs_fp32": round(whole, 6), "feature_cosine_vs_fp32_min_token": round(float(rows.min()), 6)}


def kernel(bundle: Path) -> str:
    import cpu_info

    return cpu_info.onnx_bundle_kernels(json.loads((bundle / "manifest.json").read_text()), cpu_info.cpu()["flags"],
                                        part="vision")


def main() -> None:
    from compare_vision import _image

    from edgevlm.runtime.images import prepare_image

    model = sys.argv[1]
    encode, cfg = encoder(models.onnx_bundle(model, "fp32"), 2)
    np.save(_path(model), encode(prepare_image(_image(model), cfg)))


if __name__ == "__main__":
    main()
