"""The vision graph's tables as data parts (format "npy"): the same files in every format's bundle.

A table is a learned array the runtime uses outside every graph, by name (``runtime/images.py``
``ImageKind.tables``): e.g. the row-end embedding anyres packing appends after each row of tile
features. It is written as float32 ``.npy`` (numpy's own format, readable without edgevlm).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..manifest import Part


def export_tables(graph: Any, root: str | Path) -> dict[str, Part]:
    """``graph.tables`` (name -> array) written to ``root/<name>.npy``; returns their Parts."""
    parts = {}
    for name, array in graph.tables.items():
        data = np.ascontiguousarray(np.asarray(array, dtype=np.float32))
        path = Path(root) / f"{name}.npy"
        np.save(path, data, allow_pickle=False)
        parts[name] = Part(file=path.name, format="npy", dtype="fp32",
                           outputs={name: {"dtype": "float32", "shape": list(data.shape)}}, info={"kind": "table"})
    return parts

