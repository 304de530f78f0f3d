"""Quantization recipes and the accuracy report on Qwen2-VL bundles (M-RoPE, native-resolution images).

The report (quantize/report.py) runs the runtime's own generation loop on both bundles, with an image, so
it covers M-RoPE positions and the packed vision part; its figures are stored in the manifest. fp16 must
agree with fp32 almost everywhere; the 4-bit recipes must quantize and still answer about an image (the
tiny random checkpoint's agreement at 4 bits is low by construction: its sharpened attention amplifies
weight error, so no accuracy bar is set for them here; real-size figures come from benchmarks/).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from qwen2vl_hf import synthetic_image  # noqa: E402

pytest.importorskip("torch")

import edgevlm  # noqa: E402


@pytest.fixture(scope="module")
def sources(tiny, tmp_path_factory):
    """format -> the fp32 bundle of the tiny Qwen2.5-VL (windowed ViT, untied head)."""
    root = tmp_path_factory.mktemp("qwen-quant")

    def get(format: str) -> Path:
        out = root / format
        if not out.exists():
            edgevlm.export(str(tiny("qwen2.5-vl")), str(out), format=format, validate=False, progress=None)
        return out

    return get


@pytest.mark.slow  # ~30 s; the recipes' machinery is in the default tier with MiniCPM-V (test_quantize.py)
def test_fp16_report_agrees_and_mixed_quantizes_every_part(sources, tmp_path):
    fp16 = edgevlm.quantize(str(sources("onnx")), str(tmp_path / "fp16"), recipe="fp16", report=True, progress=None)
    report = fp16.quantization["report"]
    print({k: report[k] for k in ("top1_agreement", "mean_kl", "greedy_identical_prefix_mean", "vision_cosine_min")})
    assert report["top1_agreement"] >= 0.95 and report["vision_cosine_min"] >= 0.9999
    mixed = edgevlm.quantize(str(sources("onnx")), str(tmp_path / "mixed"), recipe="mixed", progress=None)
    assert {k: mixed.quantization[k]["method"] for k in ("vision", "decoder")} == {"vision": "int8", "decoder": "w4"}
    result = edgevlm.load(str(tmp_path / "mixed")).generate("Describe.", [synthetic_image(300, 200)],
                                                            max_new_tokens=4, max_pixels=28 * 28 * 64)
    assert len(result.token_ids) == 4 and result.stats.images == 1


@pytest.mark.gguf
@pytest.mark.slow
def test_gguf_q4_k_m_with_q8_0_mmproj_runs(sources, tmp_path):
    pytest.importorskip("llama_cpp")
    manifest = edgevlm.quantize(str(sources("gguf")), str(tmp_path / "q4"), recipe="q4_k_m",
                                overrides={"mmproj": "q8_0"}, report=True, progress=None)
    assert manifest.parts["text"].dtype == "q4_k_m" and manifest.quantization["mmproj"]["method"] != "none"
    assert manifest.quantization["report"]["vision_cosine_min"] >= 0.9999  # the ONNX vision part is untouched
    result = edgevlm.load(str(tmp_path / "q4"), threads=1).generate("Describe.", [synthetic_image(300, 200)],
                                                                    max_new_tokens=4, max_pixels=28 * 28 * 64)
    assert len(result.token_ids) == 4
