"""Running an ONNX vision part: shared by the onnxruntime backend and GGUF bundles' vision part."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ...processing.vision_inputs import derived_inputs
from .packed_patches import encode_packed
from .vision_batch import BATCH_PATCHES, chunks_per_run


def encode_chunks(run: Callable[[dict[str, np.ndarray]], np.ndarray], inputs: dict[str, np.ndarray],
                  vision: Any, derived: dict[str, str], batch_patches: int = BATCH_PATCHES) -> np.ndarray:
    """Processor outputs -> features float32 [n_chunks, tokens_per_chunk, hidden] (padded to the longest chunk).

    ``run(feeds)`` runs the vision graph once; ``vision`` is the manifest's vision section, ``derived``
    the part's derived inputs. Fixed-size images run in batches of ``vision.max_batch`` chunks and at
    most ``batch_patches`` patches (BATCH_PATCHES: memory, not speed, sets it); patch sequences run
    grouped by grid, each group batched and cropped to its own length, so no compute is spent on
    padding. Packed patches (Qwen2-VL style): images grouped by grid (packed_patches.py), every image's
    rows returned as one chunk [1, sum K_i, hidden].
    """
    pixels = np.asarray(inputs["pixel_values"], np.float32)
    patch = int(vision.patch_size)
    if vision.kind == "packed_patches":
        return encode_packed(run, inputs, vision, derived, vision.max_batch, batch_patches=batch_patches)
    if vision.kind == "image":  # [n, 3, H, W]
        patches = (pixels.shape[2] // patch) * (pixels.shape[3] // patch)
        step = chunks_per_run(vision.max_batch, patches, batch_patches)
        outs = [run({"pixel_values": pixels[i:i + step]}) for i in range(0, len(pixels), step)]
        return np.concatenate(outs, axis=0)
    tgt = np.asarray(inputs["tgt_sizes"]).astype(np.int64)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (h, w) in enumerate(tgt.tolist()):
        groups.setdefault((h, w), []).append(i)
    result: list[np.ndarray | None] = [None] * len(tgt)
    for (h, w), members in groups.items():
        n = h * w
        step = chunks_per_run(vision.max_batch, n, batch_patches)
        for start in range(0, len(members), step):
            idx = members[start:start + step]
            feeds = {"pixel_values": np.ascontiguousarray(pixels[idx, :, :, : n * patch]),  # [b, 3, p, n*p]
                     "patch_attention_mask": np.ones((len(idx), n), dtype=bool)}
            feeds.update(derived_inputs(derived, tgt[idx], n, vision.params))
            out = run(feeds)  # [b, tokens, D]
            for j, i in enumerate(idx):
                result[i] = out[j]
    return stack_padded(result)


def stack_padded(chunks: list) -> np.ndarray:
    """[n, rows, D] from per-chunk features [rows_i, D]; chunks whose vision part gives fewer rows (a
    patch-merging part gives rows in proportion to the chunk's patches) are zero-padded at the end."""
    rows = max(c.shape[0] for c in chunks)
    if all(c.shape[0] == rows for c in chunks):
        return np.stack(chunks)
    out = np.zeros((len(chunks), rows, chunks[0].shape[-1]), np.float32)
    for i, c in enumerate(chunks):
        out[i, : c.shape[0]] = c
    return out
