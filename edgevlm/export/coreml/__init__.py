"""Core ML export: ``vision.mlpackage``, ``embedding.mlpackage`` and a stateful ``decoder.mlpackage``.

The same three parts as the ONNX bundle, with the same runtime contract (features in, logits out,
masks built from ``block_ids``), so the manifest differs only in part records:
- vision: batch 1, fixed shape or enumerated navit slice shapes (coreml_vision.py);
- embedding: token ids -> embeddings (coreml_embedding.py);
- decoder: KV cache held as Core ML state, masks and rotary tables as inputs, two functions sharing
  weights and state: `decode` (one token) and `prefill` (enumerated lengths) (coreml_decoder.py).
Each Part's ``file`` names the package's ``Manifest.json`` (a regular file the bundle's file list
records); ``extra["package"]`` is the package directory and ``extra["compute_units"]`` the default
compute units (``cpu_and_ne``). Converting needs coremltools but not macOS; running needs macOS 15.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ...manifest import Part


def export_coreml_parts(ref: Any, ckpt: Path, root: Path, dtype: str, max_context: int,
                        say: Callable[[str], None] = lambda message: None,
                        slice_patches: list[int] | None = None) -> dict[str, Part]:
    """Write the three packages under ``root`` and return {"vision", "embedding", "decoder"} Parts."""
    from ...families.common.reference import read_config
    from .decoder import export_decoder
    from .embedding import export_embedding
    from .vision import export_vision

    config = read_config(ckpt)
    scale = int((config.get("slice_config") or {}).get("scale_resolution", 448))
    say("converting vision (encoder + connector) to Core ML")
    vision = export_vision(ref, root, dtype, slice_patches=slice_patches, scale_resolution=scale)
    say("converting embedding to Core ML")
    embedding = export_embedding(ref, root, dtype, max_context)
    say(f"converting decoder to Core ML with a stateful KV cache of {max_context} tokens")
    decoder = export_decoder(ref, root, dtype, max_context)
    return {"vision": vision, "embedding": embedding, "decoder": decoder}
