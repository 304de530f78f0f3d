"""Golden records for reading bundles (``manifests.json`` + ``manifests/``): valid and damaged bundles,
each with Python's verdict (edgevlm/manifest: schema.py checks, files.py path containment and file
verification) and, when it refuses one, its error type and one-line message, which the JVM core must
reproduce exactly."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

from edgevlm.errors import EdgeVLMError
from edgevlm.manifest import SCHEMA_VERSION, Manifest, read_manifest, sha256_of

# The JVM core reads schema 2 only: schema-1 bundles run in the Python runtime (manifest/upgrade.py reads
# them), and the app refuses them as Python refuses any version it does not read. So its unknown-version
# message names the one version it reads; the rest of the message is Python's.
PYTHON_READS = f"this edgevlm reads versions 1 and {SCHEMA_VERSION}"
JVM_READS = f"this app reads version {SCHEMA_VERSION}"
REEXPORT = "re-export the bundle with this edgevlm version (edgevlm export ...)"
# Messages that quote a library's exception text (the JSON decoder's) are compared up to that quote.
QUOTES_LIBRARY = ("bad_json",)

Mutation = Callable[[dict[str, Any]], Any]


def _set(*path_and_value: Any) -> Mutation:
    """data[path[0]]...[path[-1]] = value."""
    *path, key, value = path_and_value

    def mutate(data: dict[str, Any]) -> None:
        for step in path:
            data = data[step]
        data[key] = value

    return mutate


def _delete(*keys: str) -> Mutation:
    return lambda data: [data.pop(k) for k in keys]


def _list_file(rel: str, part: str = "decoder") -> Mutation:
    """Point a part at ``rel`` and list ``rel`` in the file list, so only path containment can refuse it."""

    def mutate(data: dict[str, Any]) -> None:
        data["parts"][part]["file"] = rel
        data["files"][rel] = {"sha256": "0" * 64, "size": 1}

    return mutate


def _text_only(data: dict[str, Any]) -> None:
    data["vision"] = None
    data["parts"].pop("vision")
    data["files"].pop("vision.onnx")


def _truncate(d: Path) -> None:
    (d / "decoder.onnx").write_bytes(b"short")


def _tamper(d: Path) -> None:
    path = d / "vision.onnx"
    raw = bytearray(path.read_bytes())
    raw[0] ^= 1
    path.write_bytes(bytes(raw))


def _link_outside(d: Path) -> None:
    """vision.onnx becomes a link to a file next to the bundle (same bytes, so only containment refuses it)."""
    outside = d.parent / f"{d.name}-outside.onnx"
    outside.write_bytes((d / "vision.onnx").read_bytes())
    (d / "vision.onnx").unlink()
    os.symlink(os.path.relpath(outside, d), d / "vision.onnx")


# (name, change to the manifest's JSON, change to the bundle's files)
CASES: list[tuple[str, Mutation | None, Callable[[Path], Any] | None]] = [
    ("valid", None, None),
    ("valid_text_only", _text_only, None),
    ("schema_3", _set("schema_version", 3), None),
    ("schema_string", _set("schema_version", "1"), None),
    ("schema_missing", _delete("schema_version"), None),
    ("schema_1", _set("schema_version", 1), None),  # JVM-only expectation: see jvm_expectation
    ("lacks_layout", _delete("layout"), None),
    ("lacks_two", _delete("layout", "text"), None),
    ("unknown_field", _set("colour", "blue"), None),
    ("attention_top_level", _set("attention", "prefix_lm"), None),  # schema 1's home of the attention kind
    ("parts_not_object", _set("parts", [1]), None),
    ("part_malformed", _set("parts", "vision", "weights", "x"), None),
    ("part_lacks_file", lambda d: d["parts"]["embedding"].pop("file"), None),
    ("part_not_object", _set("parts", "embedding", 7), None),
    ("part_extra_v1", _set("parts", "decoder", "extra", {}), None),  # schema 1's Part.extra
    ("text_unknown_field", _set("text", "image_token_id", 5), None),
    ("text_lacks_max_context", lambda d: d["text"].pop("max_context"), None),
    ("vision_not_object", _set("vision", 5), None),
    ("tokenizer_lacks_file", lambda d: d["tokenizer"].pop("file"), None),
    ("bad_format", _set("format", "tflite"), None),
    ("bad_attention", _set("layout", "attention", "sliding"), None),
    ("bad_layer_type", _set("text", "layer_types", ["full_attention", "mamba2_attention"]), None),
    ("bad_vision_kind", _set("vision", "kind", "navit_slices"), None),  # schema 1's name
    ("bad_part_format", _set("parts", "embedding", "format", "tflite"), None),
    ("part_file_unlisted", _set("parts", "decoder", "file", "elsewhere.onnx"), None),
    # path containment: every path a manifest names stays inside the bundle (manifest/files.py inside)
    ("part_file_parent", _list_file("../x.onnx"), None),
    ("part_file_absolute", _list_file("/tmp/x.onnx"), None),
    ("part_file_inner_parent", _list_file("sub/../../x.onnx"), None),
    ("data_file_outside", _set("parts", "decoder", "data_files", ["../decoder.onnx.data"]), None),
    ("data_file_absolute", _set("parts", "decoder", "data_files", ["/etc/passwd"]), None),
    ("tokenizer_file_parent", _set("tokenizer", "file", "../tokenizer.json"), None),
    ("tokenizer_file_absolute", _set("tokenizer", "file", "/etc/passwd"), None),
    ("tokenizer_file_null", _set("tokenizer", "file", None), None),
    ("file_link_outside", None, _link_outside),
    # the files themselves
    ("file_missing", None, lambda d: (d / "embedding.onnx").unlink()),
    ("file_size", None, _truncate),
    ("file_sha256", None, _tamper),
    ("not_object", None, lambda d: (d / "manifest.json").write_text("[1, 2]", encoding="utf-8")),
]


def manifest_records(out: Path, bundle: Path) -> list[dict[str, Any]]:
    """A small valid bundle (the real manifest over stand-in part files) and damaged variants of it."""
    root = out / "manifests"
    real = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    records = []
    for name, mutate, files_mutate in CASES:
        d = _stand_in(root / name, real, mutate)
        if files_mutate:
            files_mutate(d)
        records.append(read_record(name, d))
    (root / "empty").mkdir()
    bad_json = root / "bad_json"
    bad_json.mkdir()
    (bad_json / "manifest.json").write_text("{\"format\": ", encoding="utf-8")
    for name, d in {"no_dir": root / "does-not-exist", "no_manifest": root / "empty", "bad_json": bad_json}.items():
        records.append(read_record(name, d))
    # the real exported bundle, verified (sha256 of every part)
    records.append(read_record("real_bundle", bundle))
    return [jvm_expectation(r) for r in records]


def _stand_in(d: Path, real: dict[str, Any], mutate: Mutation | None) -> Path:
    """``d`` holding ``real``'s manifest over small stand-in files with their true sizes and hashes."""
    d.mkdir(parents=True)
    data = json.loads(json.dumps(real))
    data["files"] = {}
    for rel in real["files"]:
        (d / rel).write_bytes(f"stand-in for {rel}\n".encode())
        data["files"][rel] = {"sha256": sha256_of(d / rel), "size": (d / rel).stat().st_size}
    if mutate:
        mutate(data)
    (d / "manifest.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
    return d


def read_record(name: str, d: Path) -> dict[str, Any]:
    """Python's verdict on bundle ``d``: what it read, or the error it gave."""
    record: dict[str, Any] = {"name": name, "dir": str(d)}
    try:
        record.update(ok=True, **manifest_facts(read_manifest(d, verify=True)))
    except EdgeVLMError as exc:
        message = str(exc)
        cut = message.find(" (") if name in QUOTES_LIBRARY else -1
        record.update(ok=False, error=type(exc).__name__, message=message if cut < 0 else message[:cut],
                      match="exact" if cut < 0 else "prefix")
    return record


def manifest_facts(m: Manifest) -> dict[str, Any]:
    """Everything the app reads from a manifest, each from its one home in schema 2."""
    t, v, tok = m.text, m.vision, m.tokenizer
    return {
        "format": m.format, "family": m.family, "attention": m.attention, "parts": sorted(m.parts),
        "files": sorted(m.files), "max_context": t.max_context,
        "text": {"arch": t.arch, "hidden_size": t.hidden_size, "num_layers": t.num_layers, "num_heads": t.num_heads,
                 "num_kv_heads": t.num_kv_heads, "head_dim": t.head_dim, "vocab_size": t.vocab_size,
                 "max_context": t.max_context, "layer_types": t.layer_types, "sliding_window": t.sliding_window,
                 "position_offset": t.position_offset, "position_streams": t.position_streams},
        "vision": None if v is None else {
            "kind": v.kind, "tokens_per_chunk": v.tokens_per_chunk, "hidden_size": v.hidden_size,
            "max_batch": v.max_batch, "patch_size": v.patch_size, "image_size": v.image_size, "params": v.params},
        "tokenizer": {"file": tok.file, "vocab_size": tok.vocab_size, "eos_ids": tok.eos_ids,
                      "image_token_id": tok.image_token_id},
        "part_facts": {name: {"file": p.file, "format": p.format, "dtype": p.dtype, "data_files": p.data_files,
                              "binding": p.binding, "runtime": p.runtime} for name, p in m.parts.items()},
    }


def jvm_expectation(record: dict[str, Any]) -> dict[str, Any]:
    """What the JVM core must answer, where it deliberately differs from Python (schema versions only)."""
    message = record.get("message", "")
    if PYTHON_READS in message:
        record.update(message=message.replace(PYTHON_READS, JVM_READS), python_message=message)
    if record["name"] == "schema_1":
        where = Path(record["dir"]) / "manifest.json"
        record = {"name": "schema_1", "dir": record["dir"], "ok": False, "error": "BundleError", "match": "exact",
                  "message": f"{where}: unknown manifest schema_version 1; {JVM_READS}. To fix: {REEXPORT}.",
                  "python": "reads schema 1 through manifest/upgrade.py; the JVM core reads schema 2 only"}
    if record["name"] == "schema_string":  # the fix above is Python's own text for versions it does not read
        assert record["message"].endswith(f"To fix: {REEXPORT}."), record["message"]
    return record
