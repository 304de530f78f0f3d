"""The small interface every runtime backend implements (onnxruntime, llama.cpp, Core ML).

The generic runtime (turn.py, generate.py, vlm.py) only talks to this interface; a backend hides how
its format embeds tokens, encodes images, keeps its caches and applies attention masks.

Mask convention for ``forward``: ``block_ids[t] = -1`` means token t attends causally; tokens that
share a block id ``k >= 0`` additionally attend to each other in both directions (a prefix-LM's
image + prefix, or one image's tokens). Causal attention to everything before still holds.

Positions are data: ``positions`` holds each token's position id, int64 [T] (RoPE) or [S, T] for
models with S position streams (M-RoPE: temporal, height, width); None means the next ones,
``n_past + arange(T) + text.position_offset``. The prompt layout produces them for prompts with
images (edgevlm/runtime/turn.py).

Caches: a backend holds one cache per layer, allocated once per session. Rows of a KV cache can be
rewound to any earlier length (``rewind``); a recurrent state cannot be rewound token by token, so
the runtime takes a ``snapshot`` where it may need to go back (end of a turn, end of a shared
prefix) and ``restore``s it. For KV-only models a snapshot is just the length, so both are free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..errors import EdgeVLMError


@dataclass(frozen=True)
class CacheSnapshot:
    """A point the cache can return to: ``n_past`` tokens, plus the copied states of layers that
    cannot be rewound (None for KV-only models)."""

    n_past: int
    states: Any = None


class Backend(Protocol):
    max_context: int  # cache capacity in tokens, allocated once
    n_past: int  # tokens currently held in the cache

    def encode_images(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Preprocessed image inputs -> features float32 [n_chunks, tokens_per_chunk, hidden].

        ``inputs`` carries what the processor produced: ``pixel_values`` (images: [n, 3, H, W]; patch
        sequences: [n, 3, patch, L_max] zero-padded), plus ``patch_attention_mask`` [n, L_max/patch] bool
        and ``tgt_sizes`` [n, 2] int32 for patch sequences. Chunks may be encoded in batches.
        """
        ...

    def forward(self, input_ids: np.ndarray, features: np.ndarray | None = None,
                block_ids: np.ndarray | None = None, positions: np.ndarray | None = None,
                all_logits: bool = False) -> np.ndarray:
        """Append T tokens to the cache and return logits.

        input_ids int64 [T]; features float32 [n_image_tokens, hidden] replacing, in order, the rows
        where ``input_ids == image_token_id``; block_ids int32 [T] (see module doc) or None (causal);
        positions int64 [T] / [S, T] or None (the next ones). Returns float32 [vocab] for the last
        position, or [T, vocab] with ``all_logits``.
        """
        ...

    def rewind(self, n_keep: int) -> None:
        """Forget every cached position from ``n_keep`` on (n_keep <= n_past; KV layers only)."""
        ...

    def snapshot(self) -> CacheSnapshot:
        ...

    def restore(self, snapshot: CacheSnapshot) -> None:
        ...

    def close(self) -> None:
        ...


class KVCacheMixin:
    """snapshot / restore for backends whose every layer is a KV cache: a snapshot is the length."""

    n_past: int

    def snapshot(self) -> CacheSnapshot:
        return CacheSnapshot(self.n_past)

    def restore(self, snapshot: CacheSnapshot) -> None:
        if snapshot.n_past > self.n_past:
            raise ValueError(f"cannot restore a snapshot of {snapshot.n_past} tokens into a cache holding "
                             f"{self.n_past}: its rows were overwritten")
        self.rewind(snapshot.n_past)


def recurrent_rewind_error(n_keep: int, n_past: int) -> EdgeVLMError:
    """What every backend says when asked to rewind a recurrent (linear-attention) cache mid-way."""
    return EdgeVLMError(
        f"cannot rewind to {n_keep} of {n_past} tokens: this model has recurrent (linear-attention) layers, whose "
        "state cannot go back token by token. Take a snapshot() at the point to return to and restore() it "
        "(rewind works to 0 and to the last snapshot), or start over.")


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


def position_ids(positions: np.ndarray | None, n_past: int, t: int, offset: int, streams: int = 1) -> np.ndarray:
    """int64 [T] (or [S, T] for S position streams): the given positions, or the next T ones after
    ``n_past`` (the same id in every stream, as text tokens take)."""
    if positions is None:
        out = np.arange(n_past, n_past + t, dtype=np.int64) + offset
        return out if streams == 1 else np.broadcast_to(out, (streams, t)).copy()
    out = np.asarray(positions, np.int64)
    if out.ndim == 1 and streams > 1:
        out = np.broadcast_to(out, (streams, t)).copy()
    if out.shape[-1] != t:
        from ..errors import PromptError

        raise PromptError(f"positions has {out.shape[-1]} entries for {t} tokens; pass one per token.")
    return out


def image_rows(ids: np.ndarray, image_token_id: int | None, features: np.ndarray | None,
               hidden: int) -> tuple[np.ndarray, np.ndarray]:
    """(where the placeholders are: bool [T], the feature rows that go there: float32 [K, hidden])."""
    from ..errors import PromptError

    where = ids == image_token_id if image_token_id is not None else np.zeros(len(ids), bool)
    rows = (np.zeros((0, hidden), np.float32) if features is None
            else np.asarray(features, np.float32).reshape(-1, hidden))
    if rows.shape[0] != int(where.sum()):
        raise PromptError(f"{int(where.sum())} image placeholder tokens but {rows.shape[0]} image feature rows; "
                          "the prompt's image places do not match the images given.")
    return where, rows
