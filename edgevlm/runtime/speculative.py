"""Exact speculative decoding without a draft model: prompt lookup, verified in one multi-token forward.

Answers often repeat their input: a transcription of text in an image, a follow-up question quoting
the last answer, code being edited. Prompt lookup (the n-gram drafts of transformers'
``prompt_lookup_num_tokens`` and vLLM's ``ngram`` speculator) proposes, as the next tokens, what
followed the latest earlier occurrence of the conversation's last n tokens. One forward over
[last sampled token, drafts...] returns the logits of every row (``all_logits``); each row's greedy
pick, after the same logits processors as ``generate_step``, is compared with the next draft: the
matching prefix is accepted, the first mismatch is replaced by the model's own pick, and the cache
rows of the rejected drafts are rewound. Every yielded token is therefore the argmax the model gives
after exactly the tokens before it: greedy output is the same as ``generate_step``'s by
construction, wherever a row of a T-token forward equals the one-token forward bit for bit: fp32 ONNX
bundles (tests/test_speculative.py compares ids; real Gemma 3 270M: identical logits) and 8-bit
MatMulNBits. 4-bit MatMulNBits (blocks of 32 and more) has a one-row kernel that rounds differently
from its many-row kernel (~1e-6 relative), and the int8 activations of the next layers amplify that to
the recipe's own quantization noise (0.4 to 0.9 logits on Gemma 3 270M w4), so tokens can part at a
near-tie, as they do between two prefill chunkings (docs/speculative.md has the measurements).

It is used only where it is exact and possible: greedy sampling, and a backend whose cache can drop
rows (every layer a KV cache: its ``snapshot`` is just the length). A model with recurrent-state
layers cannot rewind token by token, so it decodes plainly. Without a match no draft is made and the
step is an ordinary one-token forward, so text that never repeats costs only the lookups.

The contract is ``generate_step``'s: yields ids, appends each to ``history`` as it is yielded, and
the last yielded id is never in the cache; a consumer that stops early gets the cache rewound to
hold exactly the tokens before the last one it took. ``on_feed(ids, positions)`` is told of each token
as that lazy cache would have fed it: once per token, just before the next one is yielded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .generate import LogitsProcessor, generate_step
from .sampling import Sampler


@dataclass
class DraftStats:
    """What speculation did in one turn (GenerationStats reports it)."""

    forwards: int = 0  # decoder calls after the prefill
    drafted: int = 0  # draft tokens verified
    accepted: int = 0  # draft tokens the model agreed with


class PromptLookup:
    """Drafts from the conversation itself: the tokens after the latest earlier occurrence of its last
    n tokens, for n from ``max_ngram`` down to ``min_ngram`` (longer matches first: they predict better).

    An index of every n-gram's latest end position is extended as the history grows, so a lookup costs
    O(new tokens), not O(history). Drafts stop before any ``banned`` id (the image placeholder: a row
    fed without its image features is an error, and the sampler never picks it anyway)."""

    def __init__(self, max_ngram: int = 3, min_ngram: int = 2, banned: Sequence[int] = ()):
        if not 1 <= min_ngram <= max_ngram:
            raise ValueError(f"need 1 <= min_ngram <= max_ngram, got {min_ngram}, {max_ngram}")
        self.sizes = range(max_ngram, min_ngram - 1, -1)
        self.banned = {int(i) for i in banned}
        self._ends: dict[tuple[int, ...], int] = {}  # n-gram -> index just after its latest occurrence
        self._indexed = 0  # occurrences ending before this index are in _ends

    def draft(self, history: Sequence[int], limit: int) -> list[int]:
        """Up to ``limit`` ids that may follow ``history`` ([] when its tail never occurred before)."""
        n_hist = len(history)
        if limit <= 0 or n_hist < self.sizes[-1] + 1:
            return []
        # Index occurrences that have a continuation (end < n_hist); the current tail is indexed next time.
        for end in range(max(self._indexed, 1), n_hist):
            for n in self.sizes:
                if end >= n:
                    self._ends[tuple(history[end - n:end])] = end
        self._indexed = max(self._indexed, n_hist)
        for n in self.sizes:
            if n_hist < n:
                continue
            end = self._ends.get(tuple(history[n_hist - n:]))
            if end is None:
                continue
            out = []
            for token in history[end:end + limit]:
                if token in self.banned:
                    break
                out.append(int(token))
            if out:
                return out
        return []


def can_rewind_tokens(backend: Any) -> bool:
    """True when every layer's cache can drop rows (the Backend doc: a KV-only snapshot is the length)."""
    declared = getattr(backend, "rewinds_tokens", None)
    if declared is not None:
        return bool(declared)
    return backend.snapshot().states is None


def speculative_steps(backend: Any, logits: np.ndarray, sampler: Sampler, processors: Sequence[LogitsProcessor],
                      history: list[int], next_position: int, max_tokens: int, lookup: PromptLookup,
                      max_draft: int, stats: DraftStats | None = None,
                      on_feed: Callable[[np.ndarray, np.ndarray], None] | None = None) -> Iterator[int]:
    """``generate_step`` with prompt-lookup drafts verified in one forward; falls back to it where
    speculation would not be exact (sampling) or possible (a cache that cannot rewind rows)."""
    stats = stats if stats is not None else DraftStats()
    if sampler.params.temperature != 0.0 or max_draft <= 0 or not can_rewind_tokens(backend):
        yield from _counted(generate_step(backend, logits, sampler, processors, history, next_position,
                                          max_tokens, on_feed), stats)
        return
    base = backend.n_past  # the cache before the first generated token
    yielded = 0
    try:
        token = _pick(logits, sampler, processors, history)
        while True:
            _fed(on_feed, history, next_position, yielded)
            history.append(token)
            yielded += 1
            yield token
            if yielded >= max_tokens:
                return
            room = min(max_tokens - yielded - 1, backend.max_context - backend.n_past - 1, max_draft)
            drafts = lookup.draft(history, room)
            ids = np.array([token, *drafts], np.int64)  # [1 + k]: the pending token, then the drafts
            positions = next_position + yielded - 1 + np.arange(len(ids), dtype=np.int64)
            rows = backend.forward(ids, positions=positions, all_logits=bool(drafts))  # [1+k, V] or [V]
            stats.forwards += 1
            stats.drafted += len(drafts)
            if not drafts:
                token = _pick(rows, sampler, processors, history)
                continue
            accepted, token = _verify(rows, drafts, sampler, processors, history)
            stats.accepted += accepted
            if accepted < len(drafts):
                backend.rewind(backend.n_past - (len(drafts) - accepted))  # the rejected drafts' rows
            for draft in drafts[:accepted]:
                _fed(on_feed, history, next_position, yielded)
                history.append(draft)
                yielded += 1
                yield draft
    finally:
        # The contract: the cache holds every yielded token but the last (a consumer that stopped
        # inside a run of accepted drafts must not find the rest of the run in the cache).
        keep = base + max(yielded - 1, 0)
        if backend.n_past > keep:
            backend.rewind(keep)


def _fed(on_feed: Callable[[np.ndarray, np.ndarray], None] | None, history: list[int], next_position: int,
         yielded: int) -> None:
    """Before yielding token number ``yielded`` (from 0): the previous one is now in the lazy cache."""
    if on_feed is not None and yielded:
        on_feed(np.array([history[-1]], np.int64), np.array([next_position + yielded - 1], np.int64))


def _pick(logits: np.ndarray, sampler: Sampler, processors: Sequence[LogitsProcessor], history: list[int]) -> int:
    scores = logits.astype(np.float64)  # [V], a copy: processors write into it
    for process in processors:
        process(scores, history)
    return sampler(scores)


def _verify(rows: np.ndarray, drafts: list[int], sampler: Sampler, processors: Sequence[LogitsProcessor],
            history: list[int]) -> tuple[int, int]:
    """(how many drafts the model agrees with, the model's own pick after them). Row i holds the logits
    after the pending token and drafts[:i]; processors see the history those rows saw."""
    n0 = len(history)
    try:
        for i, draft in enumerate(drafts):
            pick = _pick(rows[i], sampler, processors, history)
            if pick != draft:
                return i, pick
            history.append(draft)
        return len(drafts), _pick(rows[len(drafts)], sampler, processors, history)
    finally:
        del history[n0:]  # the caller appends each accepted draft as it yields it


def _counted(steps: Iterator[int], stats: DraftStats) -> Iterator[int]:
    """generate_step's ids, counting its forwards (one per id after the first)."""
    try:
        for i, token in enumerate(steps):
            stats.forwards += 1 if i else 0
            yield token
    finally:
        steps.close()
