"""Long prompts are fed in chunks, as llama.cpp feeds ubatches: memory bounded by the chunk, not the prompt.

One forward over a 4,039-token image prompt (a 1000x500 image in 7 anyres tiles) makes onnxruntime hold
the whole [heads, T, T] attention and the [T, intermediate] MLP activations at once, and its arena keeps
that peak for the life of the session (4.8 GB peak RSS for a 0.5B model's image turn, against llama.cpp's
1.8 GB). In chunks of 512 every query still sees the cache plus its own chunk, so the result is the same
up to float rounding, and each chunk attends only over the keys before it: half the attention work of
one masked T x T product. A bidirectional block (an image's tokens, or a prefix-LM's image + prefix) is
never cut: it must see itself whole. ``block_safe_length`` is that rule, shared with the Core ML backend's
enumerated-length chunks (coreml.py plan_chunks).
"""

from __future__ import annotations

import numpy as np

PREFILL_CHUNK = 512


def block_safe_length(blocks: np.ndarray, start: int, n: int, end: int) -> int:
    """The longest run of at most ``n`` rows from ``start`` (rows before ``end``) that does not stop inside a
    block (equal block ids >= 0): the cut moves back to the block's start; 0 when a block starting at ``start``
    is longer than ``n``."""
    while start + n < end and blocks[start + n] >= 0 and blocks[start + n] == blocks[start + n - 1]:
        n -= 1
    return n


def prefill_spans(block_ids: np.ndarray | None, t: int, chunk: int = PREFILL_CHUNK) -> list[tuple[int, int]]:
    """[(start, end)] covering [0, t) in order: at most ``chunk`` tokens each, no block split; a block longer
    than a chunk is one span of its own."""
    if t <= chunk:
        return [(0, t)]
    blocks = np.full(t, -1) if block_ids is None else np.asarray(block_ids).reshape(-1)
    spans, start = [], 0
    while start < t:
        n = block_safe_length(blocks, start, min(chunk, t - start), t)
        if n == 0:  # the block starting here is longer than a chunk: all of it
            n = 1
            while start + n < t and blocks[start + n] == blocks[start]:
                n += 1
        spans.append((start, start + n))
        start += n
    return spans
