"""The bundle manifest: round trip, verification, and one clear error per kind of damage."""

from __future__ import annotations

import json

import pytest

from edgevlm.errors import BundleError
from edgevlm.manifest import SCHEMA_VERSION, BundleWriter, Manifest, Part, read_manifest


def _manifest() -> Manifest:
    return Manifest(format="onnx", family="paligemma", attention="prefix_lm",
                    text={"hidden_size": 8, "num_layers": 1}, vision={"tokens_per_chunk": 4},
                    processor={"kind": "fixed"}, layout={}, chat_template={},
                    tokenizer={"file": "tokenizer.json"},
                    parts={"decoder": Part(file="decoder.onnx", format="onnx",
                                           kv={"past_key": "past_key_values.%d.key"})})


@pytest.fixture
def bundle(tmp_path):
    out = tmp_path / "bundle"
    with BundleWriter(out) as writer:
        writer.path("decoder.onnx").write_bytes(b"graph bytes")
        writer.path("tokenizer.json").write_text("{}")
        writer.commit(_manifest())
    return out


def test_round_trip_records_every_file(bundle):
    manifest = read_manifest(bundle)
    assert manifest.schema_version == SCHEMA_VERSION
    assert set(manifest.files) == {"decoder.onnx", "tokenizer.json"}
    assert manifest.files["decoder.onnx"]["size"] == len(b"graph bytes")
    assert manifest.parts["decoder"].kv["past_key"] == "past_key_values.%d.key"


def test_missing_file(bundle):
    (bundle / "decoder.onnx").unlink()
    with pytest.raises(BundleError, match="decoder.onnx listed in the manifest is missing.*copy the whole directory"):
        read_manifest(bundle)


def test_tampered_file_same_size(bundle):
    (bundle / "decoder.onnx").write_bytes(b"graph bytez")
    with pytest.raises(BundleError, match="sha256 does not match.*re-copy"):
        read_manifest(bundle)


def test_truncated_file(bundle):
    (bundle / "decoder.onnx").write_bytes(b"graph")
    with pytest.raises(BundleError, match="size 5 bytes"):
        read_manifest(bundle)


@pytest.mark.parametrize("version,fix", [(SCHEMA_VERSION + 1, "upgrade edgevlm"), (0, "re-export")])
def test_unknown_schema_version(bundle, version, fix):
    data = json.loads((bundle / "manifest.json").read_text())
    data["schema_version"] = version
    (bundle / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match=f"unknown manifest schema_version {version}.*{fix}"):
        read_manifest(bundle)


def test_manifest_not_json(bundle):
    (bundle / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        read_manifest(bundle)


def test_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="no manifest.json"):
        read_manifest(tmp_path)
    with pytest.raises(BundleError, match="not a bundle directory"):
        read_manifest(tmp_path / "nope")


def test_part_file_must_be_recorded(bundle):
    data = json.loads((bundle / "manifest.json").read_text())
    data["parts"]["decoder"]["file"] = "other.onnx"
    (bundle / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match="names file 'other.onnx'"):
        read_manifest(bundle)


def test_failed_write_leaves_nothing(tmp_path):
    out = tmp_path / "bundle"
    with pytest.raises(RuntimeError):
        with BundleWriter(out) as writer:
            writer.path("decoder.onnx").write_bytes(b"half")
            raise RuntimeError("export failed midway")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_not_overwritten(bundle):
    with pytest.raises(BundleError, match="already exists"):
        BundleWriter(bundle)
