"""The recurrent states of a decoder's linear-attention layers, bound in place for onnxruntime.

A linear-attention (Gated DeltaNet) layer carries no KV rows: it keeps a short convolution state and a
recurrent state matrix per head, each of a fixed shape whatever the context (manifest binding
``states``: graph names and shapes). The graph returns the whole new state (``present_*``), and
onnxruntime must not read and write one buffer in the same run, so each state has TWO buffers,
allocated once per session: the current one is bound as the past input, the other as the present
output, and after the run they swap roles (``advance``). Nothing is allocated per step.

Such a state cannot be rewound token by token: going back means putting back a copy taken at that
point (``copy`` / ``load``, used by the backend's snapshot / restore), or starting over (``reset``).
"""

from __future__ import annotations

from typing import Any

import numpy as np


class RecurrentStates:
    def __init__(self, spec: dict[str, dict[str, Any]], layers: list[int]):
        """``spec``: state kind -> {"past": name template, "present": name template, "shape": [dims]};
        ``layers``: the model's numbers of its linear-attention layers."""
        self.names: list[tuple[str, str]] = []
        self.shapes: list[list[int]] = []
        for i in layers:
            for kind, state in spec.items():
                self.names.append((state["past"] % i, state["present"] % i))
                self.shapes.append([int(d) for d in state["shape"]])
        self._buffers = [(np.zeros(shape, np.float32), np.zeros(shape, np.float32)) for shape in self.shapes]
        self._current = 0  # which buffer of each pair holds the state

    @property
    def nbytes(self) -> int:
        """Bytes of one set of states (what a snapshot copies); twice that is allocated."""
        return sum(pair[0].nbytes for pair in self._buffers)

    def bind(self, binding: Any) -> None:
        """Bind every state: current buffer -> past input, the other -> present output."""
        for (past, present), shape, pair in zip(self.names, self.shapes, self._buffers):
            binding.bind_input(past, "cpu", 0, np.float32, shape, pair[self._current].ctypes.data)
            binding.bind_output(present, "cpu", 0, np.float32, shape, pair[1 - self._current].ctypes.data)

    def advance(self) -> None:
        """After a run: the present buffers now hold the states."""
        self._current = 1 - self._current

    def reset(self) -> None:
        """The states of an empty sequence (zeros)."""
        for pair in self._buffers:
            pair[self._current].fill(0.0)

    def copy(self) -> list[np.ndarray]:
        return [pair[self._current].copy() for pair in self._buffers]

    def load(self, arrays: list[np.ndarray]) -> None:
        for pair, array in zip(self._buffers, arrays):
            np.copyto(pair[self._current], array)
