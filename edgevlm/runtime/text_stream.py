"""Layer 3 of a turn: token ids -> text deltas, with stop strings and hold-back.

A stop string may span tokens, so text that could still be the start of one is held back until it
cannot; when a stop string appears, the text before it is the answer. UTF-8 sequences split over
byte-fallback tokens are handled by the tokenizer's ``StreamDecoder``.
"""

from __future__ import annotations

from typing import Sequence

from ..processing.tokenizer import StreamDecoder, Tokenizer


class TextStream:
    def __init__(self, tokenizer: Tokenizer, stops: Sequence[str] = ()):
        self.decoder = StreamDecoder(tokenizer)
        self.stops = [s for s in stops if s]
        self.hold = max((len(s) for s in self.stops), default=1) - 1
        self.text = ""  # everything decoded so far (cut at a stop string once one is seen)
        self.emitted = 0  # characters of ``text`` already returned
        self.stopped = False

    def push(self, token: int) -> str:
        """Add one generated id; return the new text that is safe to show (possibly "")."""
        self.text += self.decoder.push(token)
        cut = min((self.text.find(s) for s in self.stops if s in self.text), default=-1)
        if cut >= 0:
            self.text, self.stopped = self.text[:cut], True
            return self._take(len(self.text))
        return self._take(len(self.text) - self.hold)  # hold back what could start a stop string

    def finish(self) -> str:
        """The rest of the text at the end of the turn."""
        if not self.stopped:
            self.text += self.decoder.flush()
        return self._take(len(self.text))

    def _take(self, upto: int) -> str:
        if upto <= self.emitted:
            return ""
        delta, self.emitted = self.text[self.emitted:upto], upto
        return delta
