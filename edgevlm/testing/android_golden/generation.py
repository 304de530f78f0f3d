"""A golden generation trace (``generation.json`` + ``gen_*.bin``): a three-turn chat on a tiny exported
bundle through the real runtime (``edgevlm.load`` ... ``Chat.send``), with every backend call recorded
(what it was fed, what it returned) and every text the tokenizer encoded. The JVM test replays the
recorded backend and must make the same calls and sample the same tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .common import pattern_image, sha256, write_bin


class _Recorder:
    """Wraps a Backend and records every call: what it was fed and what it returned."""

    def __init__(self, backend, out: Path):
        self._backend, self._out, self.calls = backend, out, []

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def _bin(self, array: np.ndarray, what: str) -> dict[str, Any]:
        return write_bin(self._out, f"gen_{len(self.calls):03d}_{what}.bin", array)

    def encode_images(self, inputs):
        features = self._backend.encode_images(inputs)  # [n_chunks, tokens, hidden]
        self.calls.append({"op": "encode_images", "pixel_values_shape": list(inputs["pixel_values"].shape),
                           "pixel_values_sha256": sha256(np.asarray(inputs["pixel_values"], np.float32)),
                           "tgt_sizes": np.asarray(inputs.get("tgt_sizes", np.zeros((0, 2)))).tolist(),
                           "features": self._bin(np.asarray(features, np.float32), "features")})
        return features

    def forward(self, input_ids, features=None, block_ids=None, positions=None, all_logits=False):
        logits = self._backend.forward(input_ids, features, block_ids, positions, all_logits)
        call = {"op": "forward", "ids": np.asarray(input_ids).tolist(),
                "block_ids": None if block_ids is None else np.asarray(block_ids).tolist(),
                # None: the backend's next positions (n_past + text.position_offset onwards)
                "positions": None if positions is None else np.asarray(positions).tolist(),
                "features": None if features is None else self._bin(np.asarray(features, np.float32), "rows")}
        call["logits"] = self._bin(np.asarray(logits, np.float32), "logits")
        self.calls.append(call)
        return logits

    def rewind(self, n_keep):
        self.calls.append({"op": "rewind", "n_keep": int(n_keep)})
        return self._backend.rewind(n_keep)

    def snapshot(self):
        raise AssertionError("the chat took a cache snapshot, which the JVM Generator does not port: record it")

    def restore(self, snapshot):
        raise AssertionError("the chat restored a cache snapshot, which the JVM Generator does not port: record it")


class _TokenizerRecorder:
    def __init__(self, tokenizer):
        self._tokenizer, self.encoded = tokenizer, []

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)

    def encode(self, text):
        ids = self._tokenizer.encode(text)
        self.encoded.append({"text": text, "ids": ids.tolist()})
        return ids


# Sampling with every option, greedy with a penalty, and a second image (its image id continues after
# the first turn's). On the tiny random model every turn ends on its budget, so each turn's last token
# is pending and fed first by the next turn; the third ends 2 tokens short of the 512-token context.
GENERATION_TURNS = [
    {"text": "What is in the picture?", "images": [{"width": 640, "height": 480, "seed": 3}], "max_new_tokens": 12,
     "temperature": 0.8, "top_k": 50, "top_p": 0.9, "repetition_penalty": 1.1, "seed": 1234},
    {"text": "And what colour is it?", "images": [], "max_new_tokens": 8, "temperature": 0.0,
     "repetition_penalty": 1.2, "seed": 5},
    {"text": "Now this one.", "images": [{"width": 300, "height": 700, "seed": 1}], "max_new_tokens": 6,
     "temperature": 1.0, "top_k": 0, "top_p": 1.0, "repetition_penalty": 1.0, "seed": 77},
]


def generation_record(out: Path, bundle: Path) -> dict[str, Any]:
    import edgevlm

    vlm = edgevlm.load(str(bundle))
    recorder = _Recorder(vlm.backend, out)
    tokenizer = _TokenizerRecorder(vlm.tokenizer)
    vlm.backend, vlm.tokenizer = recorder, tokenizer
    chat = vlm.chat(system=None)
    turns = []
    for turn in GENERATION_TURNS:
        first_call, first_text = len(recorder.calls), len(tokenizer.encoded)
        images = [pattern_image(i["width"], i["height"], i["seed"]) for i in turn["images"]]
        options = {k: v for k, v in turn.items() if k not in ("text", "images")}
        result = chat.send(turn["text"], images, **options)
        turns.append({**turn, "calls": recorder.calls[first_call:], "encoded": tokenizer.encoded[first_text:],
                      "tokens": result.token_ids, "finish_reason": result.finish_reason,
                      "pending": list(chat.conv.pending)})
    layout, template = vlm.layout, vlm.template
    tokens = [layout.feature_token, *template.stop_strings]
    vlm.close()
    return {"bundle": str(bundle), "max_context": int(recorder.max_context),
            "position_offset": int(vlm.manifest.text.position_offset),
            "token_to_id": {t: vlm.tokenizer.token_to_id(t) for t in tokens},
            "stop_ids": sorted(vlm.stop_ids), "turns": turns}


def export_tiny_bundle(work: Path) -> Path:
    """A tiny MiniCPM-V 2.6 ONNX bundle (random weights; ~30 s on 2 cores)."""
    import edgevlm
    from edgevlm.testing.tiny import make_tiny

    ckpt = make_tiny("minicpmv-2.6", work / "ckpt")
    edgevlm.export(str(ckpt), str(work / "bundle"), format="onnx", max_context=512, validate=False, progress=None)
    return work / "bundle"
