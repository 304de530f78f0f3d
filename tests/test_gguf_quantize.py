"""GGUF quantization with llama.cpp's own quantizer, on tiny exports and on a whole bundle.

Tiny random models have small logit margins, so agreement figures here are loose sanity bounds;
the accuracy check on real weights (our Q4_K_M vs the published one) is in test_gguf_real.py.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
llama_cpp = pytest.importorskip("llama_cpp")
gguf = pytest.importorskip("gguf")

import edgevlm  # noqa: E402
from edgevlm.errors import BundleError, EdgeVLMError  # noqa: E402
from edgevlm.export.gguf.text import export_text_gguf  # noqa: E402
from edgevlm.families import load_reference  # noqa: E402
from edgevlm.manifest import read_manifest, sha256_of  # noqa: E402
from edgevlm.quantize.gguf import quantize_gguf  # noqa: E402

pytestmark = pytest.mark.gguf

# llama_ftype values written to general.file_type (llama.h)
FILE_TYPES = {"Q8_0": 7, "Q4_0": 2, "Q4_K_M": 15, "Q5_K_M": 17}


@pytest.fixture(scope="module")
def f32_gguf(tiny, tmp_path_factory):
    ckpt = tiny("minicpmv-2.6")
    path = tmp_path_factory.mktemp("quant") / "text-f32.gguf"
    export_text_gguf(load_reference(ckpt), ckpt, path, "fp32")
    return path


def _top1(path, ids):
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=128, n_threads=2, logits_all=True, verbose=False)
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)]).argmax(-1)


@pytest.mark.parametrize("method", list(FILE_TYPES))
def test_quantize_text_gguf(f32_gguf, tmp_path, method):
    out = tmp_path / f"{method}.gguf"
    record = quantize_gguf(f32_gguf, out, method, threads=2)
    ids = list(range(20, 84))
    agree = float((_top1(out, ids) == _top1(f32_gguf, ids)).mean())
    file_type = gguf.GGUFReader(str(out)).fields["general.file_type"].contents()
    print(f"{method}: {record['bytes_before']} -> {record['bytes_after']} bytes, top-1 vs f32 {agree:.2f}")
    assert file_type == FILE_TYPES[method]
    assert record["bytes_after"] < 0.35 * record["bytes_before"]
    assert agree >= (0.75 if method == "Q8_0" else 0.3)


def test_unknown_method_is_a_clear_error(f32_gguf, tmp_path):
    with pytest.raises(EdgeVLMError, match="choose one of"):
        quantize_gguf(f32_gguf, tmp_path / "x.gguf", "Q7_Z")


def test_quantize_bundle_keeps_mmproj_and_runs(tiny, tmp_path):
    from test_gguf_backend import write_bundle

    from edgevlm.runtime.backends.llamacpp import LlamaCppBackend

    ckpt = tiny("minicpmv-2.6")
    src = tmp_path / "f32"
    write_bundle(load_reference(ckpt), ckpt, src)
    manifest = edgevlm.quantize(str(src), str(tmp_path / "q4"), recipe="q4_k_m", progress=None)
    again = read_manifest(tmp_path / "q4")  # hashes verified
    print(f"quantization record: {again.quantization['text']}")
    assert manifest.parts["text"].dtype == "q4_k_m" and again.quantization["text"]["type"] == "Q4_K_M"
    assert again.quantization["mmproj"] == {"method": "none", "dtype": "fp16"}
    assert sha256_of(src / "mmproj.gguf") == sha256_of(tmp_path / "q4" / "mmproj.gguf")  # f16 mmproj kept
    backend = LlamaCppBackend(tmp_path / "q4", again, threads=2)
    try:
        logits = backend.forward(np.arange(5, 25))
        assert logits.shape == (backend.vocab,) and np.isfinite(logits).all()
    finally:
        backend.close()
    with pytest.raises(BundleError, match="already quantized"):
        edgevlm.quantize(str(tmp_path / "q4"), str(tmp_path / "q4-again"), recipe="q8_0", progress=None)


def test_mmproj_q8_0_still_matches_in_mtmd(tiny, tmp_path):
    from test_gguf_mmproj import reference_features, smooth_rgb

    from edgevlm.families.minicpmv.mmproj import write_mmproj
    from edgevlm.quantize.gguf import quantize_mmproj_q8_0
    from edgevlm.runtime.backends.llamacpp_mtmd import MtmdImageEncoder

    ckpt = tiny("minicpmv-2.6")
    ref = load_reference(ckpt)
    export_text_gguf(ref, ckpt, tmp_path / "text.gguf", "fp32")
    write_mmproj(ref, tmp_path / "mmproj.gguf", "fp32")
    record = quantize_mmproj_q8_0(tmp_path / "mmproj.gguf", tmp_path / "mmproj-q8.gguf")
    enc = MtmdImageEncoder(tmp_path / "text.gguf", tmp_path / "mmproj-q8.gguf")
    try:
        rgb = smooth_rgb(800, 600)
        ours, expected = enc.encode(rgb), reference_features(ref, rgb)
    finally:
        enc.close()
    cos = min(float(((a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)).min())
              for a, b in zip(ours, expected))
    print(f"mmproj Q8_0: {record['bytes_before']} -> {record['bytes_after']} bytes, min cosine {cos:.5f}")
    assert record["bytes_after"] < record["bytes_before"]
    assert cos >= 0.99
