"""Chunked prefill: time and peak RSS of one long prompt fed whole vs in chunks, side by side.

    python benchmarks/ab_prefill_chunk.py [--model internvl3-1b] [--recipe w4] [--tokens 3400] [--runs 3]

The onnxruntime backend feeds prompts over ``PREFILL_CHUNK`` tokens in spans (runtime/backends/
prefill_chunks.py). Policies: "whole" (one run, the backend before chunking), "chunks of 512" (the default),
"chunks of 256". The prompt is ``--tokens`` seeded random token ids (text only: the decoder's share of an
image turn; a 1024x768 InternVL3-1B image is 3,328 image tokens). Each policy in a process of its own
(ab_children.py), one warm-up prefill then one timed; figures: prefill ms, tokens/s and the process's peak RSS.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import models  # noqa: E402
from ab_children import main_or_child  # noqa: E402
from compare_text import peak_rss_mb  # noqa: E402

POLICIES = {"whole": 10 ** 9, "chunks of 512": 512, "chunks of 256": 256}  # policy -> prefill_chunk


def measure(args, policy: str) -> dict:
    import edgevlm

    vlm = edgevlm.load(str(models.onnx_bundle(args.model, args.recipe)), threads=args.threads)
    backend = vlm.backend
    backend.prefill_chunk = POLICIES[policy]
    ids = np.random.default_rng(0).integers(100, min(vlm.vocab_limit, 30000), args.tokens)
    ids[ids == backend.image_token_id] = 100  # text only: no image placeholder
    backend.forward(ids)  # warm-up: the arena grows to this policy's largest run
    backend.rewind(0)
    t0 = time.perf_counter()
    backend.forward(ids)
    ms = (time.perf_counter() - t0) * 1e3
    vlm.close()
    return {"prefill_ms": ms, "tokens_per_s": args.tokens / ms * 1e3, "tokens": args.tokens,
            "peak_rss_mb": peak_rss_mb()}


if __name__ == "__main__":
    main_or_child(__file__, __doc__, POLICIES, "whole",
                  {"prefill_ms": "prefill ms", "tokens_per_s": "tokens/s", "peak_rss_mb": "peak RSS MB"},
                  measure, "prefill_chunk",
                  lambda a, r: f"Prefill of {r['tokens']} tokens, {a.model} {a.recipe}",
                  lambda ap: ap.add_argument("--tokens", type=int, default=3400), default_model="internvl3-1b",
                  default_recipe="w4")
