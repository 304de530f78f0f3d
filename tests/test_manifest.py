"""The bundle manifest: round trip, verification, and one clear error per kind of damage."""

from __future__ import annotations

import json

import pytest

from edgevlm.errors import BundleError
from edgevlm.manifest import (SCHEMA_VERSION, BundleWriter, Manifest, Part, TextInfo, TokenizerInfo, VisionInfo,
                              read_manifest)


def _manifest() -> Manifest:
    text = TextInfo(arch="gemma", hidden_size=8, num_layers=1, num_heads=1, num_kv_heads=1, head_dim=8,
                    vocab_size=16, max_context=32)
    return Manifest(format="onnx", family="paligemma", text=text,
                    vision=VisionInfo(kind="image", tokens_per_chunk=4, hidden_size=8),
                    tokenizer=TokenizerInfo(file="tokenizer.json", vocab_size=16),
                    processor={"kind": "fixed"}, layout={"attention": "prefix"}, chat_template={},
                    parts={"decoder": Part(file="decoder.onnx", format="onnx",
                                           binding={"kv": {"past_key": "past_key_values.%d.key"}})})


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
    assert manifest.parts["decoder"].binding["kv"]["past_key"] == "past_key_values.%d.key"
    assert manifest.attention == "prefix" and manifest.text.max_context == 32


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


def _edit(bundle, change):
    data = json.loads((bundle / "manifest.json").read_text())
    change(data)
    (bundle / "manifest.json").write_text(json.dumps(data))


@pytest.mark.parametrize("path", ["../decoder.onnx", "/etc/hostname", "sub/../../x.onnx"])
def test_a_part_cannot_name_a_file_outside_the_bundle(bundle, path):
    """A tampered manifest whose own hash list agrees still cannot point the runtime outside the bundle."""
    def change(data):
        data["parts"]["decoder"]["file"] = path
        data["files"][path] = data["files"]["decoder.onnx"]
    _edit(bundle, change)
    with pytest.raises(BundleError, match="outside the bundle"):
        read_manifest(bundle, verify=False)


def test_tokenizer_and_data_files_are_checked_too(bundle):
    _edit(bundle, lambda data: data["tokenizer"].__setitem__("file", "../tokenizer.json"))
    with pytest.raises(BundleError, match="tokenizer file '../tokenizer.json'.*outside the bundle"):
        read_manifest(bundle)
    _edit(bundle, lambda data: (data["tokenizer"].__setitem__("file", "tokenizer.json"),
                                data["parts"]["decoder"].__setitem__("data_files", ["/tmp/weights.data"])))
    with pytest.raises(BundleError, match="data file '/tmp/weights.data'.*outside the bundle"):
        read_manifest(bundle)


def test_a_symlink_out_of_the_bundle_is_refused(bundle, tmp_path):
    outside = tmp_path / "elsewhere.onnx"
    outside.write_bytes(b"graph bytes")  # same bytes, so size and sha256 agree
    (bundle / "decoder.onnx").unlink()
    (bundle / "decoder.onnx").symlink_to(outside)
    with pytest.raises(BundleError, match="is a link to .*elsewhere.onnx, outside the bundle"):
        read_manifest(bundle)


def test_a_killed_write_leaves_a_partial_folder_that_the_next_write_removes(tmp_path):
    out = tmp_path / "bundle"
    stale = tmp_path / ".bundle.partial-999999999-abc"  # a process id no process has
    stale.mkdir()
    (stale / "decoder.onnx").write_bytes(b"half")
    with BundleWriter(out) as writer:
        assert not stale.exists()
        writer.path("decoder.onnx").write_bytes(b"graph bytes")
        writer.path("tokenizer.json").write_text("{}")
        writer.commit(_manifest())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_a_live_writer_keeps_its_partial_folder(tmp_path):
    first = BundleWriter(tmp_path / "bundle")
    second = BundleWriter(tmp_path / "bundle")  # e.g. a second export to the same place, still running
    assert first.tmp.exists() and second.tmp.exists()
    for writer in (first, second):
        writer.__exit__(None, None, None)


def test_a_new_bundle_never_goes_inside_its_source(bundle):
    with pytest.raises(BundleError, match="inside the source bundle"):
        BundleWriter(bundle / "inner", source=bundle)
    with pytest.raises(BundleError, match="is the source bundle"):
        BundleWriter(bundle, overwrite=True, source=bundle)
