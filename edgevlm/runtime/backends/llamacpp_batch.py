"""A reusable llama_batch with numpy views on its arrays (token ids or embedding rows, one sequence).

llama.cpp's M-RoPE architectures (``LLAMA_ROPE_TYPE_MROPE`` / ``IMROPE``: Qwen2-VL, Qwen 3.5 ...) read an
embedding batch's positions section-major, ``pos[j * n_tokens + i]`` for j < 4, while
``llama_batch_init`` allocates one position per token; so an embedding batch for such a model owns a
position array four times as long (the library's pointer is put back before it frees the batch). A
one-stream position fills every section (the same id in every stream, which is plain RoPE, and what
llama.cpp itself does for token batches); S-stream positions [S, n] (Qwen2-VL's M-RoPE: temporal,
height, width) fill the first S sections and the rest take 0 (as mtmd fills image rows). Token batches
always take one position per token.
"""

from __future__ import annotations

import ctypes

import numpy as np

import llama_cpp as L

SECTIONS = 4  # GGML_MROPE_SECTIONS


def position_sections(model) -> int:
    """Positions per embedding row llama.cpp reads for this model: 4 (M-RoPE) or 1."""
    kind = L.llama_model_rope_type(model)
    return SECTIONS if kind in (L.LLAMA_ROPE_TYPE_MROPE, L.LLAMA_ROPE_TYPE_IMROPE) else 1


class Batch:
    def __init__(self, capacity: int, n_embd: int = 0, sections: int = 1):
        self.capacity = capacity
        self.raw = L.llama_batch_init(capacity, n_embd, 1)
        self.sections = sections if n_embd else 1
        self._own_pos = None
        if self.sections > 1:
            # the address itself: a ctypes pointer read from the struct would view the field and change with it
            self._library_pos = ctypes.cast(self.raw.pos, ctypes.c_void_p).value
            self._own_pos = np.zeros(capacity * self.sections, np.int32)
            self.raw.pos = self._own_pos.ctypes.data_as(type(self.raw.pos))
        self.pos = self._own_pos if self._own_pos is not None else np.ctypeslib.as_array(self.raw.pos, shape=(capacity,))
        self.logits = np.ctypeslib.as_array(self.raw.logits, shape=(capacity,))
        n_seq = np.ctypeslib.as_array(self.raw.n_seq_id, shape=(capacity,))
        n_seq[:] = 1
        for i in range(capacity):
            self.raw.seq_id[i][0] = 0
        self.token = np.ctypeslib.as_array(self.raw.token, shape=(capacity,)) if not n_embd else None
        self.embd = np.ctypeslib.as_array(self.raw.embd, shape=(capacity, n_embd)) if n_embd else None

    def fill(self, positions: np.ndarray, want_logits: bool | str) -> None:
        """``positions`` [n] (one stream) or [S, n] (S <= sections streams; a token batch takes stream 0)."""
        n = positions.shape[-1]
        self.raw.n_tokens = n
        if positions.ndim == 2 and self.sections == 1:
            positions = positions[0]
        if positions.ndim == 1:
            for j in range(self.sections):  # section-major: [t..., h..., w..., extra...]
                self.pos[j * n:(j + 1) * n] = positions
        else:
            self.pos[:positions.size] = positions.reshape(-1)  # section-major: row j is section j
            self.pos[positions.size:self.sections * n] = 0
        self.logits[:n] = 0
        if want_logits == "all":
            self.logits[:n] = 1
        elif want_logits:
            self.logits[n - 1] = 1

    def free(self) -> None:
        if self.raw is not None:
            if self._own_pos is not None:
                self.raw.pos = ctypes.cast(self._library_pos, type(self.raw.pos))
            L.llama_batch_free(self.raw)
            self.raw = None
