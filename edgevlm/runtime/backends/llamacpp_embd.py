"""Token-embedding rows read straight from a GGUF file, for tokens llama.cpp must receive as embeddings.

A llama.cpp batch carries either token ids or embedding rows, never both. A bidirectional block
(a prefix-LM's image + prefix) must be decoded as ONE non-causal batch, so its text tokens are
turned into rows here: ``token_embd`` is memory-mapped with gguf-py's reader (numpy only) and only
the requested rows are dequantized, so a 262k-token vocabulary costs nothing until used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class TokenEmbeddings:
    def __init__(self, gguf_path: str | Path, token_scale: float, embd_input_scale: float):
        import gguf

        self._quants = gguf.quants
        reader = gguf.GGUFReader(str(gguf_path))
        tensor = next((t for t in reader.tensors if t.name == "token_embd.weight"), None)
        if tensor is None:
            from ...errors import BundleError

            raise BundleError(f"{gguf_path}: no token_embd.weight tensor; this is not a text-model GGUF.")
        self._data = tensor.data  # memmap, [n_vocab, row] (float rows or quantized blocks as uint8)
        self._qtype = tensor.tensor_type
        self._float = tensor.tensor_type in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16)
        # llama.cpp multiplies token ids' rows by token_scale but embedding inputs by embd_input_scale;
        # a row we feed as embedding must therefore be pre-multiplied by their ratio.
        self.factor = np.float32(token_scale / embd_input_scale)

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """int [T] -> float32 [T, n_embd], exactly what llama.cpp would compute for these ids."""
        raw = self._data[np.asarray(ids, np.int64)]
        rows = raw.astype(np.float32) if self._float else self._quants.dequantize(raw, self._qtype).astype(np.float32)
        return rows * self.factor if self.factor != 1 else rows
