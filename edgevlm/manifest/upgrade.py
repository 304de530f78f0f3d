"""Schema-1 manifests (edgevlm before the family contract) read as schema 2.

Schema 1 kept facts in several places (the image token id in ``text``, ``tokenizer`` and the
embedding part; ``max_context`` and layer counts in ``text`` and the decoder part; two attention
vocabularies; "f32" and "fp32") and everything a backend needed in each part's ``extra``. This moves
every fact to its one home (edgevlm/manifest/schema.py) without touching the bundle's files, so a
bundle exported before schema 2 loads and gives the same tokens (tests/test_manifest_schema1.py).
"""

from __future__ import annotations

import copy
from typing import Any

from ..errors import BundleError

DTYPES = {"f32": "fp32", "f16": "fp16"}
ATTENTION_V1 = {"causal": "causal", "prefix_lm": "prefix", "bidirectional_image": "image_blocks"}
VISION_KINDS_V1 = {"fixed": "image", "navit_slices": "patch_sequence"}
DERIVED_V1 = {"navit_position_ids": "bucketed_position_ids", "resampler_key_pos": "sincos_2d_keys"}
TEXT_FIELDS = ("arch", "hidden_size", "num_layers", "num_heads", "num_kv_heads", "head_dim", "vocab_size",
               "max_context", "layer_types", "sliding_window")
# Part.extra keys of schema 1, by where they go.
TEXT_FACTS = ("num_layers", "num_kv_heads", "head_dim", "hidden_size", "vocab_size", "max_context", "position_offset")
BINDING = {"masks", "mask_value", "layer_masks", "logits_index_input", "derived_inputs", "functions",
           "default_function", "position_input", "prefill_sizes", "mask_width", "rope", "states", "slice_patches"}
RUNTIME = {"graph", "ort_graph_optimization", "compute_units", "token_scale", "embd_input_scale", "kv_state_dtype"}
DROPPED = {"image_token_id", "kind", "patch_size", "patches_per_side", "embed_dim", "tokens_per_chunk", "image_size",
           "max_batch", "external_data", "package"}


SCHEMA_VERSION = 2  # the version this edgevlm writes (manifest/schema.py)


def upgrade(data: dict[str, Any], where: str) -> dict[str, Any]:
    """A schema-2 dict for any schema version this edgevlm reads (a copy; the input is not changed)."""
    version = data.get("schema_version")
    if isinstance(version, bool):  # JSON true is not a version (True == 1 in Python)
        version = repr(version)
    if version == SCHEMA_VERSION:
        return data
    if version == 1:
        try:
            return _from_v1(copy.deepcopy(data))
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise BundleError(f"{where}: a schema-1 manifest that cannot be read ({type(exc).__name__}: {exc}). "
                              "Re-export the bundle with this edgevlm version.") from None
    if isinstance(version, int) and version > SCHEMA_VERSION:
        fix = "upgrade edgevlm (pip install -U edgevlm) to read it"
    else:
        fix = "re-export the bundle with this edgevlm version (edgevlm export ...)"
    raise BundleError(f"{where}: unknown manifest schema_version {version!r}; this edgevlm reads versions 1 and "
                      f"{SCHEMA_VERSION}. To fix: {fix}.")


def _from_v1(data: dict[str, Any]) -> dict[str, Any]:
    parts = data["parts"]
    text_v1 = data["text"]
    decoder = (parts.get("decoder") or parts.get("text") or {}).get("extra", {})
    text = {k: text_v1[k] for k in TEXT_FIELDS if k in text_v1}
    for key in TEXT_FACTS:
        if key not in text and key in decoder:
            text[key] = decoder[key]
    text["position_offset"] = int(decoder.get("position_offset", 0))
    text["details"] = {k: v for k, v in text_v1.items() if k not in TEXT_FIELDS and k != "image_token_id"}

    vision = None
    vision_part = parts.get("vision", {}).get("extra", {})
    if vision_part or data.get("vision"):
        kind = VISION_KINDS_V1[vision_part.get("kind", "fixed")]
        vision = {"kind": kind, "tokens_per_chunk": int(data["vision"].get("tokens_per_chunk",
                                                                           vision_part.get("tokens_per_chunk", 0))),
                  "hidden_size": int(data["vision"].get("hidden_size", text["hidden_size"])),
                  "max_batch": int(data["vision"].get("max_batch") or vision_part.get("max_batch", 16)),
                  "patch_size": int(vision_part.get("patch_size", data["processor"].get("patch_size", 14))),
                  "image_size": vision_part.get("image_size"), "params": {}}
        if "patches_per_side" in vision_part:
            vision["params"] = {"position_table_side": vision_part["patches_per_side"],
                                "key_pos_dim": vision_part["embed_dim"]}

    tokenizer = {k: v for k, v in data["tokenizer"].items()
                 if k in ("file", "vocab_size", "eos_ids", "eos_tokens", "image_token_id")}
    tokenizer.setdefault("vocab_size", text["vocab_size"])
    if tokenizer.get("image_token_id") is None:
        tokenizer["image_token_id"] = text_v1.get("image_token_id")

    layout = dict(data["layout"])
    layout.setdefault("attention", ATTENTION_V1.get(data.get("attention", "causal"), "causal"))
    return {"format": data["format"], "family": data["family"], "text": text, "vision": vision,
            "tokenizer": tokenizer, "processor": data["processor"], "layout": layout,
            "chat_template": data["chat_template"], "parts": {n: _part(p) for n, p in parts.items()},
            "generation": data.get("generation", {}), "source": _dtypes(data.get("source", {})),
            "quantization": _dtypes(data.get("quantization", {})), "validation": data.get("validation", {}),
            "files": data.get("files", {}), "schema_version": SCHEMA_VERSION}


def _part(p: dict[str, Any]) -> dict[str, Any]:
    extra = p.get("extra", {})
    binding = {("logits_index" if k == "logits_index_input" else k): v for k, v in extra.items() if k in BINDING}
    if "derived_inputs" in binding:
        binding["derived_inputs"] = {name: DERIVED_V1.get(kind, kind) for name, kind in binding["derived_inputs"].items()}
    if p.get("kv"):
        binding["kv"] = p["kv"]
    data_files = [extra[k] for k in ("external_data", "package") if extra.get(k)]
    return {"file": p["file"], "format": p["format"], "dtype": DTYPES.get(p.get("dtype", "fp32"), p.get("dtype", "fp32")),
            "inputs": p.get("inputs", {}), "outputs": p.get("outputs", {}), "data_files": data_files,
            "binding": binding, "runtime": {k: v for k, v in extra.items() if k in RUNTIME},
            "info": {k: v for k, v in extra.items() if k not in BINDING | RUNTIME | DROPPED | set(TEXT_FACTS)}}


def _dtypes(record: Any) -> Any:
    """"f32" / "f16" spelled "fp32" / "fp16" in a source or quantization record (nested)."""
    if isinstance(record, dict):
        return {k: (DTYPES.get(v, v) if k == "dtype" and isinstance(v, str) else _dtypes(v)) for k, v in record.items()}
    return record
