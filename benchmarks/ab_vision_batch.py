"""Vision batch size: wall time and peak RSS of one tiled image, per batching policy, side by side.

    python benchmarks/ab_vision_batch.py [--model smolvlm-256m] [--recipe fp32] [--runs 3] [--threads 2] [--out DIR]

The runtime caps a vision run at ``BATCH_PATCHES`` patches (runtime/backends/vision_batch.py). Policies:
"one chunk" (1 chunk per run), "default" (the cap), "all chunks" (no cap: the manifest's max_batch, the
runtime's behaviour before the cap). Each policy runs in a process of its own (ab_children.py), after one
warm-up on the same image (the arena grows to the policy's batch). Writes DIR/vision_batch.json and .md.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import models  # noqa: E402
from ab_children import main_or_child  # noqa: E402
from compare_text import peak_rss_mb  # noqa: E402

POLICIES = {"one chunk": 1, "default": None, "all chunks": 10 ** 9}  # policy -> batch_patches (None: default)


def measure(args, policy: str) -> dict:
    """The bundle's vision part on compare_vision's image under ``policy`` (warm-up, then timed)."""
    from compare_vision import _image
    import vision_features
    from edgevlm.runtime.backends.vision_batch import BATCH_PATCHES
    from edgevlm.runtime.images import prepare_image

    encode, cfg = vision_features.encoder(models.onnx_bundle(args.model, args.recipe), args.threads,
                                          POLICIES[policy])
    prepared = prepare_image(_image(args.model), cfg)
    encode(prepared)  # warm-up: the arena grows to this policy's batch
    t0 = time.perf_counter()
    encode(prepared)
    return {"batch_patches": POLICIES[policy] or BATCH_PATCHES, "wall_ms": (time.perf_counter() - t0) * 1e3,
            "chunks": int(prepared.inputs["pixel_values"].shape[0]),
            "peak_rss_mb": peak_rss_mb()}


if __name__ == "__main__":
    main_or_child(__file__, __doc__, POLICIES, "all chunks", {"wall_ms": "wall ms", "peak_rss_mb": "peak RSS MB"},
                  measure, "vision_batch",
                  lambda a, r: f"Vision batch policy, {a.model} {a.recipe}, one {r['chunks']}-chunk image "
                               f"(default = at most {r['batch_patches']} patches per run)")
