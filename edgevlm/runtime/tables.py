"""A bundle's data parts (format "npy", written by export/tables.py) as numpy arrays, by part name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BundleError
from ..manifest import inside


def read_tables(bundle: str | Path, manifest: Any) -> dict[str, np.ndarray]:
    """Every data part of the bundle (no pickles: loading a bundle never runs code from it)."""
    out = {}
    for name, part in manifest.data_parts.items():
        path = inside(bundle, part.file, "part file")
        try:
            out[name] = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise BundleError(f"{path}: cannot read data part {name!r} ({exc}); re-copy or re-export the "
                              "bundle.") from None
    return out
