"""How many image chunks one vision run takes: a memory rule, shared by every backend's vision feeding."""

from __future__ import annotations

# Patches per vision run (at least one chunk). On a CPU, batching chunks gains at most 4-10% CPU time
# (docs/decoder_graph.md) while onnxruntime's memory arena grows with the batch and never shrinks:
# 13 SmolVLM tiles at once peaked at 4.7 GB RSS, LLaVA-OneVision's 7 tiles at 5.1 GB (benchmarks/README.md).
BATCH_PATCHES = 2048


def chunks_per_run(max_batch: int, patches_per_chunk: int, batch_patches: int = BATCH_PATCHES) -> int:
    """The manifest's ``max_batch`` chunks, fewer when their patches exceed ``batch_patches``, never fewer than one."""
    return max(1, min(int(max_batch), int(batch_patches) // max(1, int(patches_per_chunk))))
