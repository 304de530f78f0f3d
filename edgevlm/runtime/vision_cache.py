"""Image features cached by image content: asking a second question about the same picture skips
preprocessing and the vision encoder. LRU, bounded in bytes."""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np
from PIL import Image


def image_key(image: Image.Image, settings: str) -> str:
    """Content hash of the decoded pixels (so the same photo from a path or from bytes hits) + settings."""
    digest = hashlib.sha256()
    digest.update(f"{image.mode}{image.size}{settings}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


class VisionCache:
    def __init__(self, max_bytes: int = 256 << 20):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, tuple[np.ndarray, object]] = OrderedDict()
        self.bytes = 0
        self.hits = self.misses = 0

    def get(self, key: str):
        """(feature rows [K, hidden], the image's plan) or None."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    def put(self, key: str, features: np.ndarray, plan: object) -> None:
        if features.nbytes > self.max_bytes:
            return  # larger than the whole cache: not worth evicting everything for
        if key in self._entries:
            self.bytes -= self._entries.pop(key)[0].nbytes
        self._entries[key] = (features, plan)
        self.bytes += features.nbytes
        while self.bytes > self.max_bytes:
            _, (old, _) = self._entries.popitem(last=False)
            self.bytes -= old.nbytes

    def __len__(self) -> int:
        return len(self._entries)
