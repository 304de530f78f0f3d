"""Long prompts are fed in chunks, as llama.cpp feeds ubatches: memory bounded by the chunk, not the prompt.

One forward over a 4,039-token image prompt (LLaVA-OneVision's 1000x500 image) makes onnxruntime hold
the whole [heads, T, T] attention and the [T, intermediate] MLP activations at once, and its arena keeps
that peak for the life of the session (4.8 GB peak RSS for a 0.5B model's image turn, against llama.cpp's
1.8 GB). In chunks of 512 every query still sees the cache plus its own chunk, so the result is the same
up to float rounding, and each chunk attends only over the keys before it: half the attention work of
one masked T x T product. A bidirectional block (an image's tokens under prefix-LM or Gemma 3 attention)
is never cut: it must see itself whole.
"""

from __future__ import annotations

import numpy as np

PREFILL_CHUNK = 512


def prefill_spans(block_ids: np.ndarray | None, t: int, chunk: int = PREFILL_CHUNK) -> list[tuple[int, int]]:
    """[(start, end)] covering [0, t) in order: at most ``chunk`` tokens each, except that no run of equal
    block id >= 0 is split (a cut inside one moves back to the run's start, or past its end when the run
    starts the span)."""
    if t <= chunk:
        return [(0, t)]
    blocks = np.full(t, -1) if block_ids is None else np.asarray(block_ids).reshape(-1)
    spans, start = [], 0
    while start < t:
        end = min(start + chunk, t)
        if end < t and blocks[end] >= 0 and blocks[end - 1] == blocks[end]:  # the cut is inside a block
            run_start = end
            while run_start > start and blocks[run_start - 1] == blocks[end]:
                run_start -= 1
            if run_start > start:
                end = run_start
            else:  # the block starts this span and is longer than a chunk: take all of it
                while end < t and blocks[end] == blocks[start]:
                    end += 1
        spans.append((start, end))
        start = end
    return spans
