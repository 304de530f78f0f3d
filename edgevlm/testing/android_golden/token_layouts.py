"""Golden records for token layouts (``token_layouts.json``): where image features go, token types and
attention blocks, from token ids, for every attention kind; plus one real prompt through a real tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgevlm.errors import EdgeVLMError
from edgevlm.processing.config import ChatTemplate, ImageLayout
from edgevlm.processing.prompt import PromptText, build_prompt, layout_tokens

from .prompts import family_specs

ATTENTION_KINDS = ("causal", "prefix", "image_blocks")  # layout.attention (manifest/schema.py)


class _IdsTokenizer:
    """Stands in for the tokenizer in ``layout_tokens``: the token ids are the golden input here."""

    def __init__(self, texts: dict[str, list[int]], feature_id: int):
        self.texts, self.feature_id = texts, feature_id

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self.texts[text], dtype=np.int64)

    def token_to_id(self, token: str) -> int:
        return self.feature_id


def _layout_fields(result) -> dict[str, Any]:
    return {"input_ids": result.input_ids.tolist(), "image_positions": result.image_positions.tolist(),
            "token_type_ids": result.token_type_ids.tolist(), "block_ids": result.block_ids.tolist(),
            "prefix_length": result.prefix_length}


def token_layout_records(tokenizer_json: Path | None) -> list[dict[str, Any]]:
    f = 9  # the feature token id in the synthetic cases
    synthetic = [
        ([1, 2, f, f, f, f, 3, 4], [], [2]),
        ([1, f, f, 5, f, f, 6, f, f, 7], [], [1, 2]),
        ([f, f, f, f, 8, 8], [11, 12, 13], [2]),
        ([f, f, 1, 2, 3], [4], []),
        ([1, 2, 3], [], []),
        ([f, f, f, 1, f], [], [2]),  # two runs of feature tokens for one image: two blocks
        ([f, f, f], [], [1]),  # error: 3 feature tokens, 1 chunk of 2
    ]
    records = []
    for attention in ATTENTION_KINDS:
        layout = ImageLayout(feature_token="<f>", tokens_per_chunk=2, attention=attention)
        for prefix, suffix, chunks in synthetic:
            tok = _IdsTokenizer({"P": prefix, "S": suffix}, f)
            record = {"attention": attention, "tokens_per_chunk": 2, "feature_id": f, "prefix_ids": prefix,
                      "suffix_ids": suffix, "chunks_per_image": chunks}
            try:
                record.update(_layout_fields(layout_tokens(tok, PromptText("P", "S" if suffix else ""), layout, chunks)))
            except EdgeVLMError as exc:
                record.update(error=type(exc).__name__, message=str(exc))
            records.append(record)
    if tokenizer_json is not None:
        # real ids: the MiniCPM-V 2.6 tiny tokenizer over a real prompt (the app tokenizes with the same file)
        from edgevlm.processing.tokenizer import Tokenizer

        tokenizer = Tokenizer.from_file(tokenizer_json)
        spec = family_specs()["minicpmv-2.6"]
        layout, template = ImageLayout.from_dict(spec["layout"]), ChatTemplate.from_dict(spec["chat_template"])
        prompt = build_prompt("Where is the cat?", [[2, 1], None], layout, template)
        result = layout_tokens(tokenizer, prompt, layout, [3, 1])
        records.append({"attention": layout.attention, "tokens_per_chunk": layout.tokens_per_chunk,
                        "feature_id": tokenizer.token_to_id(layout.feature_token), "text": prompt.text,
                        "prefix_ids": result.input_ids.tolist(), "suffix_ids": [], "chunks_per_image": [3, 1],
                        **_layout_fields(result)})
    return records
