"""The small interface every runtime backend implements (onnxruntime, llama.cpp, Core ML).

The generic runtime (vlm.py, session.py) only talks to this interface; a backend hides how its
format embeds tokens, encodes images, keeps the KV cache and applies attention masks.

Mask convention for ``forward``: ``block_ids[t] = -1`` means token t attends causally; tokens that
share a block id ``k >= 0`` additionally attend to each other in both directions (PaliGemma's
image + prefix block, a Gemma 3 image block). Causal attention to everything before still holds.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Backend(Protocol):
    max_context: int  # KV cache capacity in tokens, allocated once
    n_past: int  # tokens currently held in the KV cache

    def encode_images(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Preprocessed image inputs -> features float32 [n_chunks, tokens_per_chunk, hidden].

        ``inputs`` carries what the processor produced: ``pixel_values`` (fixed: [n, 3, H, W]; slices:
        [n, 3, patch, L_max] zero-padded), plus ``patch_attention_mask`` [n, L_max/patch] bool and
        ``tgt_sizes`` [n, 2] int32 for sliced images. Slices may be encoded in batches.
        """
        ...

    def forward(self, input_ids: np.ndarray, features: np.ndarray | None = None,
                block_ids: np.ndarray | None = None, all_logits: bool = False) -> np.ndarray:
        """Append T tokens to the KV cache and return logits.

        input_ids int64 [T]; features float32 [n_image_tokens, hidden] replacing, in order, the rows
        where ``input_ids == image_token_id``; block_ids int32 [T] (see module doc) or None (causal).
        Returns float32 [vocab] for the last position, or [T, vocab] with ``all_logits``.
        """
        ...

    def rewind(self, n_keep: int) -> None:
        """Forget every cached position from ``n_keep`` on (n_keep <= n_past)."""
        ...

    def close(self) -> None:
        ...


def check_tokens(input_ids: np.ndarray, n_past: int, max_context: int, block_ids: np.ndarray | None,
                 fix: str = "re-export with a larger --max-context") -> np.ndarray:
    """The checks every backend's ``forward`` starts with; returns the ids as int64 [T]."""
    from ..errors import PromptError

    ids = np.asarray(input_ids, np.int64).reshape(-1)
    if len(ids) == 0:
        raise PromptError("forward() got no tokens; pass at least one token id.")
    if n_past + len(ids) > max_context:
        raise PromptError(f"{n_past + len(ids)} tokens do not fit the KV cache of {max_context} tokens. Shorten "
                          f"the prompt or conversation, or {fix}.")
    if block_ids is not None and len(block_ids) != len(ids):
        raise PromptError(f"block_ids has {len(block_ids)} entries for {len(ids)} tokens; pass one per token.")
    return ids


def image_rows(ids: np.ndarray, image_token_id: int, features: np.ndarray | None,
               hidden: int) -> tuple[np.ndarray, np.ndarray]:
    """(where the placeholders are: bool [T], the feature rows that go there: float32 [K, hidden])."""
    from ..errors import PromptError

    where = ids == image_token_id
    rows = (np.zeros((0, hidden), np.float32) if features is None
            else np.asarray(features, np.float32).reshape(-1, hidden))
    if rows.shape[0] != int(where.sum()):
        raise PromptError(f"{int(where.sum())} image placeholder tokens but {rows.shape[0]} image feature rows; "
                          "the prompt's image places do not match the images given.")
    return where, rows
