"""Qwen2-VL / Qwen2.5-VL Core ML: the whole export check run through CoreMLBackend's own feeding code.

Core ML packages run only on macOS; here the exact PyTorch modules handed to coremltools (vision at an
enumerated patch count, the stateful decoder with its fp16 cache) stand in for them
(export/coreml/check.py), driven by the backend: each image padded to the smallest enumerated patch
count (the padding masked out), M-RoPE rotary tables computed from the three position streams, prompt
chunks padded to the prefill lengths. The conversion itself is checked by tests/test_coreml.py (slow
tier for these checkpoints).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("coremltools")

from edgevlm.export.coreml.check import module_backend, module_manifest  # noqa: E402
from edgevlm.export.validate import validate_bundle  # noqa: E402
from edgevlm.families import family_for, load_reference, read_config  # noqa: E402
from edgevlm.manifest import TokenizerInfo  # noqa: E402
from edgevlm.processing.tokenizer import Tokenizer  # noqa: E402


@pytest.mark.parametrize("name", ["qwen2-vl", pytest.param("qwen2.5-vl", marks=pytest.mark.slow)])
def test_export_check_through_the_coreml_backend_with_converter_modules(tiny, name):
    ckpt = tiny(name)
    ref = load_reference(ckpt)
    manifest = module_manifest(ref, 512)  # the check's prompt: 391 image + ~30 text tokens
    spec = family_for(ckpt).bundle_spec(ckpt, read_config(ckpt))
    manifest.processor, manifest.layout = spec.processor.to_dict(), spec.layout.to_dict()
    manifest.chat_template = spec.chat_template.to_dict()
    manifest.tokenizer = TokenizerInfo(**spec.tokenizer_record(ckpt / "tokenizer.json"))
    # the check's 640x480 image has 34 x 46 = 1564 patches at the published budget: padded to 40 x 40
    assert manifest.parts["vision"].binding["slice_patches"][:4] == [256, 576, 1024, 1600]
    assert manifest.parts["decoder"].binding["rope"][0]["streams"] == [0, 0, 1, 1, 1, 2, 2, 2]
    # float32 cache: the wiring (padding, rotary streams, chunking) at fp32 tolerance, and fast (CPU fp16 is slow)
    report = validate_bundle(ref, str(ckpt), module_backend(ref, manifest, torch.float32), manifest,
                             Tokenizer.from_file(ckpt / "tokenizer.json"), "fp32")
    print({k: report[k] for k in ("vision", "logits", "greedy")})
    assert report["passed"] and report["greedy"]["equal"] and report["vision"]["cosine"] > 0.99999
