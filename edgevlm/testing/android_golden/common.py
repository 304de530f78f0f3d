"""What every golden writer shares: array hashes, the ``.bin``/JSON writers and the test-pattern images."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def sha256(array: np.ndarray) -> str:
    """sha256 of the array's bytes, C order, little-endian (what the Java side hashes)."""
    return hashlib.sha256(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()).hexdigest()


def write_bin(out: Path, name: str, array: np.ndarray) -> dict[str, Any]:
    """Raw little-endian file + a reference {file, dtype, shape} for the JSON."""
    array = np.ascontiguousarray(array)
    (out / name).write_bytes(array.astype(array.dtype.newbyteorder("<")).tobytes())
    return {"file": name, "dtype": str(array.dtype), "shape": list(array.shape)}


def write_json(out: Path, name: str, data: Any) -> None:
    (out / name).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def test_pattern(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Deterministic uint8 [h, w, 3]: a ramp per channel plus 7-bit hash noise (all arithmetic mod 2**32).

    channel c: ramp_c + ((x*73856093 ^ y*19349663 ^ (3*seed + c)*83492791) * 2654435761 mod 2**32) >> 25,
    ramp_0 = x*127 // max(w-1, 1), ramp_1 = y*127 // max(h-1, 1), ramp_2 = 127 * ((x//37 + y//29) & 1).
    The Java tests compute the same formula (PatternImage.java).
    """
    y = np.arange(height, dtype=np.uint32)[:, None]  # [h, 1]
    x = np.arange(width, dtype=np.uint32)[None, :]  # [1, w]
    ramps = [x * 127 // max(width - 1, 1) + 0 * y, y * 127 // max(height - 1, 1) + 0 * x,
             ((x // 37 + y // 29) & 1) * 127]
    out = np.empty((height, width, 3), dtype=np.uint8)
    for c in range(3):
        salt = np.uint32(((3 * seed + c) * 83492791) % 2**32)
        hsh = ((x * np.uint32(73856093)) ^ (y * np.uint32(19349663)) ^ salt) * np.uint32(2654435761)  # [h, w]
        out[:, :, c] = (ramps[c] + (hsh >> np.uint32(25))).astype(np.uint8)
    return out


@lru_cache(maxsize=4)
def pattern_image(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(test_pattern(width, height, seed), "RGB")
