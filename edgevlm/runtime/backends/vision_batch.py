"""How many image chunks one vision run takes: a memory rule, shared by every backend's vision feeding."""

from __future__ import annotations

# Patches per vision run (at least one chunk): one real-size tile or slice per run, small chunks batched.
# On a CPU, batching big chunks buys no speed while onnxruntime's memory arena grows with the batch and never
# shrinks. LLaVA-OneVision-0.5B's 7 tiles of 729 patches, fp32 (benchmarks/ab_vision_batch.py, AMD EPYC Zen 3,
# 2 threads): one per run 29.0 s / 2.0 GB peak RSS, two per run 31.8 s / 2.2 GB, all 7 at once 35.0 s / 3.1 GB;
# 13 SmolVLM tiles at once had peaked at 4.7 GB.
BATCH_PATCHES = 1024


def chunks_per_run(max_batch: int, patches_per_chunk: int, batch_patches: int = BATCH_PATCHES) -> int:
    """The manifest's ``max_batch`` chunks, fewer when their patches exceed ``batch_patches``, never fewer than one."""
    return max(1, min(int(max_batch), int(batch_patches) // max(1, int(patches_per_chunk))))
