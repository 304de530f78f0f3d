"""Layer 2 of a turn: feed it, then generate tokens one step at a time (mlx-lm's generate_step).

``feed`` puts a prepared turn (turn.py) into the backend's cache and returns the last position's
logits; ``generate_step`` then yields one token per step: the logits processors run (tokens that
must never be sampled, the vocabulary cap, the repetition penalty), the sampler picks, and the token
is fed only when the next one is asked for. A consumer that stops early therefore leaves its last
token unfed: the next turn feeds it first (``Conversation.pending``). Text (stop strings, deltas) is
layer 3 (text_stream.py); ``Chat.stream`` composes the three.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .sampling import Sampler

# A logits processor rewrites the float64 scores [vocab] in place, seeing the conversation's token ids.
LogitsProcessor = Callable[[np.ndarray, Sequence[int]], None]


def suppress_tokens(ids: np.ndarray) -> LogitsProcessor:
    """Never sample these ids (the image placeholder: its rows only ever carry image features)."""
    ids = np.asarray(ids, np.int64)

    def process(scores: np.ndarray, history: Sequence[int]) -> None:
        scores[ids[ids < len(scores)]] = -np.inf

    return process


def cap_vocabulary(limit: int) -> LogitsProcessor:
    """Never sample ids past the tokenizer's vocabulary (padding rows of a table grown to a multiple of 64)."""

    def process(scores: np.ndarray, history: Sequence[int]) -> None:
        scores[limit:] = -np.inf

    return process


def penalize_repetition(penalty: float) -> LogitsProcessor:
    """transformers' repetition penalty: scores of seen ids divided (if > 0) or multiplied by ``penalty``."""

    def process(scores: np.ndarray, history: Sequence[int]) -> None:
        seen = np.fromiter(set(history), dtype=np.int64)
        if seen.size:
            picked = scores[seen]
            scores[seen] = np.where(picked > 0, picked / penalty, picked * penalty)

    return process


def feed(backend: Any, turn: Any) -> np.ndarray:
    """Prefill: the turn's tokens, feature rows, blocks and positions into the cache -> logits [vocab]."""
    return backend.forward(turn.ids, turn.rows, turn.blocks, turn.positions)


def generate_step(backend: Any, logits: np.ndarray, sampler: Sampler, processors: Sequence[LogitsProcessor],
                  history: list[int], next_position: int, max_tokens: int,
                  on_feed: Callable[[np.ndarray, np.ndarray], None] | None = None) -> Iterator[int]:
    """Yield up to ``max_tokens`` sampled ids, starting from the prefill's ``logits``.

    Each yielded id is appended to ``history`` and fed (at ``next_position``, then onwards) only when
    the consumer asks for the next one; ``on_feed(ids, positions)`` is told of every feed."""
    for step in range(max_tokens):
        scores = logits.astype(np.float64)  # [V], a copy: processors write into it
        for process in processors:
            process(scores, history)
        token = sampler(scores)
        history.append(token)
        yield token
        if step + 1 < max_tokens:
            ids, positions = np.array([token], dtype=np.int64), np.array([next_position + step], dtype=np.int64)
            logits = backend.forward(ids, positions=positions)
            if on_feed is not None:
                on_feed(ids, positions)


def greedy_tokens(backend: Any, turn: Any, max_tokens: int, stop_ids: set[int], next_position: int) -> list[int]:
    """Greedy ids for a prepared turn up to and including a stop id (the parity check's loop)."""
    sampler = Sampler.greedy()
    out: list[int] = []
    for token in generate_step(backend, feed(backend, turn), sampler, (), [], next_position, max_tokens):
        out.append(token)
        if token in stop_ids:
            break
    return out
