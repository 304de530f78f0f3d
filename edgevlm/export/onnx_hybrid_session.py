"""A minimal numpy loop over a hybrid decoder graph (onnx_hybrid_decoder.py): binds KV rows and states.

For the export parity checks and the prefill benchmark until the runtime's per-layer state cache
exists. It reads the layer list from the Part (``extra["layers"]``), keeps the KV rows of the
full-attention layers and the latest conv / recurrent states of the linear-attention layers, and
builds the causal mask. No torch; plain ``InferenceSession.run`` (the runtime will bind in place).
"""

from __future__ import annotations

from typing import Any

import numpy as np

FULL = "full_attention"


class HybridSession:
    """One sequence over an exported hybrid decoder: ``step(embeds, positions)`` -> logits of every new row."""

    def __init__(self, session: Any, extra: dict[str, Any]):
        self.session = session
        self.extra = extra
        self.output_names = [o.name for o in session.get_outputs()]
        self.has_mask = "attention_bias" in {i.name for i in session.get_inputs()}
        self.reset()

    def reset(self) -> None:
        """An empty cache: no KV rows, zero states."""
        self.n_past = 0
        self.cache: dict[str, np.ndarray] = {}
        for layer in self.extra["layers"]:
            if layer["kind"] == FULL:
                empty = np.zeros((1, 0, self.extra["num_kv_heads"], self.extra["head_dim"]), np.float32)
                self.cache[layer["past_key"]] = self.cache[layer["past_value"]] = empty
            else:
                for state in layer["states"].values():
                    self.cache[state["past"]] = np.zeros(state["shape"], np.float32)

    def snapshot(self) -> dict[str, Any]:
        """Everything needed to come back to this point (KV rows could be a row count; states must be copied)."""
        return {"n_past": self.n_past, "cache": {k: v.copy() for k, v in self.cache.items()}}

    def restore(self, snap: dict[str, Any]) -> None:
        self.n_past = snap["n_past"]
        self.cache = {k: v.copy() for k, v in snap["cache"].items()}

    def step(self, embeds: np.ndarray, positions: np.ndarray, all_logits: bool = True) -> np.ndarray:
        """embeds [1, T, D]; positions [1, T] or [3, 1, T] -> logits [1, T or 1, vocab]; the cache advances."""
        t = embeds.shape[1]
        feeds = dict(self.cache)
        feeds.update(inputs_embeds=np.ascontiguousarray(embeds, np.float32),
                     position_ids=np.ascontiguousarray(positions, np.int64),
                     logits_index=np.arange(t, dtype=np.int64) if all_logits else np.array([t - 1], np.int64))
        if self.has_mask:
            feeds["attention_bias"] = causal_bias(self.n_past, t, self.extra["mask_value"])
        outputs = dict(zip(self.output_names, self.session.run(None, feeds)))
        for layer in self.extra["layers"]:
            if layer["kind"] == FULL:
                for past, present in ((layer["past_key"], layer["present_key"]),
                                      (layer["past_value"], layer["present_value"])):
                    self.cache[past] = np.concatenate([self.cache[past], outputs[present]], axis=1)
            else:
                for state in layer["states"].values():
                    self.cache[state["past"]] = outputs[state["present"]]
        self.n_past += t
        return outputs["logits"]


def causal_bias(n_past: int, t: int, mask_value: float) -> np.ndarray:
    """[1, 1, T, P+T]: row q sees keys 0 .. P+q."""
    keys = np.arange(n_past + t)[None, :]
    rows = n_past + np.arange(t)[:, None]
    return np.where(keys <= rows, 0.0, mask_value).astype(np.float32)[None, None]


def greedy(session: HybridSession, prompt_embeds: np.ndarray, prompt_positions: np.ndarray, next_position: int,
           embed: Any, max_new_tokens: int, streams: int = 1, eos_ids: tuple[int, ...] = ()
           ) -> tuple[list[int], np.ndarray]:
    """Greedy tokens after a prompt (prefill in one call, then one call per token) and the first-step logits.

    ``embed(token_id) -> [D]``; decode positions continue at ``next_position`` (on every stream); an
    ``eos_ids`` token ends generation (it is included, as transformers' ``generate`` returns it).
    """
    logits = session.step(prompt_embeds, prompt_positions, all_logits=False)
    first = logits[0, -1].copy()
    tokens, position = [], next_position
    while True:
        tokens.append(int(logits[0, -1].argmax()))
        if len(tokens) == max_new_tokens or tokens[-1] in eos_ids:
            return tokens, first
        positions = np.full((streams, 1, 1), position, np.int64) if streams == 3 else np.array([[position]], np.int64)
        logits = session.step(embed(tokens[-1])[None, None], positions, all_logits=False)
        position += 1
