"""A thin wrapper over ``tokenizers.Tokenizer`` (the bundle's tokenizer.json) and a streaming decoder.

No transformers: the runtime loads ``tokenizer.json`` directly. Special tokens written in the text
(``<image>``, ``<|im_start|>`` ...) are parsed as special tokens; no BOS/EOS is added unless the
caller asks (chat templates put them in the text).
"""

from __future__ import annotations

import os

import numpy as np
from tokenizers import Tokenizer as _HFTokenizer


class Tokenizer:
    """Encode/decode with the bundle's tokenizer.json."""

    def __init__(self, tokenizer: _HFTokenizer, add_special_tokens: bool = False):
        self._tokenizer = tokenizer
        # False: the prompt text already carries BOS etc.; True: also run the post-processor
        # (which adds BOS for Gemma-style tokenizers).
        self.add_special_tokens = add_special_tokens

    @classmethod
    def from_file(cls, path: str | os.PathLike, add_special_tokens: bool = False) -> "Tokenizer":
        return cls(_HFTokenizer.from_file(str(path)), add_special_tokens)

    def encode(self, text: str) -> np.ndarray:
        """int64 ``[T]``."""
        ids = self._tokenizer.encode(text, add_special_tokens=self.add_special_tokens).ids
        return np.asarray(ids, dtype=np.int64)

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        return self._tokenizer.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def token_to_id(self, token: str) -> int | None:
        return self._tokenizer.token_to_id(token)

    def id_to_token(self, token_id: int) -> str | None:
        return self._tokenizer.id_to_token(int(token_id))

    @property
    def vocab_size(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=True)


class StreamDecoder:
    """Turns a growing list of ids into text deltas whose concatenation is the full decode.

    Decoding each new token alone breaks multi-byte UTF-8 split over byte-fallback tokens and
    drops SentencePiece leading spaces; instead we decode a short window of earlier tokens plus the
    new ones and emit only the text past the window, holding back while the tail is an incomplete
    UTF-8 sequence (decoded as U+FFFD).
    """

    def __init__(self, tokenizer: Tokenizer, skip_special_tokens: bool = True):
        self._tokenizer = tokenizer
        self._skip = skip_special_tokens
        self._ids: list[int] = []
        self._prefix_offset = 0  # start of the context window
        self._read_offset = 0  # ids before this have been emitted

    def _decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=self._skip)

    def push(self, token_id: int) -> str:
        """Add one id; return the new text (possibly "")."""
        self._ids.append(int(token_id))
        window_text = self._decode(self._ids[self._prefix_offset : self._read_offset])
        full_text = self._decode(self._ids[self._prefix_offset :])
        if len(full_text) > len(window_text) and not full_text.endswith("\ufffd"):
            delta = full_text[len(window_text) :]
            self._prefix_offset = self._read_offset
            self._read_offset = len(self._ids)
            return delta
        return ""

    def flush(self) -> str:
        """Whatever is still held back (e.g. a truncated UTF-8 sequence at the end of generation)."""
        window_text = self._decode(self._ids[self._prefix_offset : self._read_offset])
        full_text = self._decode(self._ids[self._prefix_offset :])
        self._prefix_offset = self._read_offset = len(self._ids)
        return full_text[len(window_text) :] if len(full_text) > len(window_text) else ""
