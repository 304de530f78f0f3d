"""Core ML export: ``vision.mlpackage``, ``embedding.mlpackage`` and a stateful ``decoder.mlpackage``.

The same three parts as the ONNX bundle, with the same runtime contract (features in, logits out,
masks built from ``block_ids``), so the manifest differs only in part records:
- vision: batch 1, fixed shape or enumerated patch-sequence shapes (vision.py);
- embedding: token ids -> embeddings (coreml_embedding.py);
- decoder: KV cache held as Core ML state, masks and rotary tables as inputs, two functions sharing
  weights and state: `decode` (one token) and `prefill` (enumerated lengths) (decoder.py).
Each Part's ``file`` names the package's ``Manifest.json`` (a regular file the bundle's file list
records); ``data_files`` holds the package directory and ``runtime["compute_units"]`` the default
compute units (``cpu_and_ne``). Converting needs coremltools but not macOS; running needs macOS 15.
"""

from __future__ import annotations

from typing import Any

from ...manifest import Part


def export_parts(job: Any) -> dict[str, Part]:
    """The format entry point (edgevlm/formats.py): the three packages under ``job.root``."""
    from .decoder import export_decoder
    from .embedding import export_embedding
    from .vision import export_vision

    job.say("converting vision (encoder + connector) to Core ML")
    vision = export_vision(job.ref, job.root, job.dtype, slice_patches=job.options.get("slice_patches"))
    job.say("converting embedding to Core ML")
    embedding = export_embedding(job.ref, job.root, job.dtype, job.max_context)
    job.say(f"converting decoder to Core ML with a stateful KV cache of {job.max_context} tokens")
    decoder = export_decoder(job.ref, job.root, job.dtype, job.max_context)
    return {"vision": vision, "embedding": embedding, "decoder": decoder}
