"""Named quantization recipes: which method each part of a bundle gets.

Users of peers ask for two things: quantize the language model hard and the vision tower gently,
and say what it cost. A recipe is a per-part table; ``--vision`` / ``--decoder`` / ``--embedding``
override single parts.

Methods (ONNX): ``none``; ``fp16`` (weights and activations); ``int8`` (weights int8 per output
channel, activations quantized dynamically: MatMulInteger); ``rows8`` (embedding tables: int8 per
row with a scale per token); ``w8`` / ``w4`` (weight-only, block-wise
int8 / int4 weights: MatMulNBits, computing with int8 activations inside the kernel); static ``qdq8`` / ``qdq16`` (QDQ with calibration,
for NPU execution providers such as QNN).
"""

from __future__ import annotations

from ..errors import EdgeVLMError

ONNX_METHODS = ("none", "fp16", "int8", "rows8", "w8", "w4", "qdq8", "qdq16")

RECIPES: dict[str, dict[str, str]] = {
    "fp16": {"vision": "fp16", "embedding": "fp16", "decoder": "fp16"},
    "int8": {"vision": "int8", "embedding": "rows8", "decoder": "int8"},
    "w8": {"vision": "w8", "embedding": "rows8", "decoder": "w8"},
    "w4": {"vision": "w4", "embedding": "rows8", "decoder": "w4"},
    # the language model hard, the vision tower gently, the embedding table int8
    "mixed": {"vision": "int8", "embedding": "rows8", "decoder": "w4"},
    # NPU (QNN) recipes: static QDQ vision with calibration images; the decoder stays on the CPU
    "qdq8": {"vision": "qdq8", "embedding": "rows8", "decoder": "w8"},
    "qdq16": {"vision": "qdq16", "embedding": "rows8", "decoder": "w8"},
}


def plan(recipe: str, parts: list[str], overrides: dict[str, str] | None = None,
         methods: tuple[str, ...] = ONNX_METHODS) -> dict[str, str]:
    """part name -> method for this bundle's parts."""
    if recipe not in RECIPES:
        raise EdgeVLMError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    table = {part: RECIPES[recipe].get(part, "none") for part in parts}
    for part, method in (overrides or {}).items():
        if part not in table:
            raise EdgeVLMError(f"--{part}: this bundle has no {part} part (it has {', '.join(parts)})")
        table[part] = method
    for part, method in table.items():
        if method not in methods:
            raise EdgeVLMError(f"{part}: unknown method {method!r}; choose one of {', '.join(methods)}")
    return table
