"""Bundles written before manifest schema 2 still load and give the same tokens.

tests/golden/schema1/ holds two tiny ONNX bundles exported by edgevlm at commit 3a7bca4 (schema 1:
facts repeated in several places, everything a backend needed in each part's ``extra``) and the
tokens that edgevlm generated from them then (expected.json). This edgevlm reads them through
edgevlm/manifest/upgrade.py without touching their files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import edgevlm
from edgevlm.manifest import SCHEMA_VERSION, read_manifest
from edgevlm.processing.sample_image import sample_image

GOLDEN = Path(__file__).parent / "golden" / "schema1"
EXPECTED = json.loads((GOLDEN / "expected.json").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_schema1_bundle_reads_as_schema2(name):
    raw = json.loads((GOLDEN / name / "manifest.json").read_text())
    assert raw["schema_version"] == 1 and "attention" in raw  # the fixture really is schema 1
    manifest = read_manifest(GOLDEN / name)
    assert manifest.schema_version == SCHEMA_VERSION
    assert manifest.tokenizer.image_token_id == raw["tokenizer"]["image_token_id"]
    assert manifest.text.max_context == raw["parts"]["decoder"]["extra"]["max_context"]
    assert manifest.parts["decoder"].binding["kv"] == raw["parts"]["decoder"]["kv"]
    assert manifest.attention == raw["layout"]["attention"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_schema1_bundle_gives_the_same_tokens(name, tmp_path):
    bundle = tmp_path / name
    shutil.copytree(GOLDEN / name, bundle)
    case = EXPECTED[name]
    vlm = edgevlm.load(bundle)
    image = sample_image(*case["image"][:2], seed=case["image"][2])
    got = vlm.generate(case["image_prompt"], images=[image], max_new_tokens=len(case["image_tokens"]))
    print(f"{name}: {got.token_ids}")
    assert got.token_ids == case["image_tokens"]
    chat = vlm.chat()
    answers = [chat.send(text, max_new_tokens=len(want)).token_ids for text, want in zip(case["chat"],
                                                                                          case["chat_tokens"])]
    assert answers == case["chat_tokens"]
    assert json.loads((bundle / "manifest.json").read_text())["schema_version"] == 1  # read, never rewritten
