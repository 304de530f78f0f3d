"""Quantization recipes on the hybrid (Qwen3.5) decoder: w4 / w8 reach the linear-attention projections,
the recurrent and conv states stay float32 graph I/O, the quantized bundles run, and the accuracy report
works on them (its loop starts every prompt from an empty cache: rewind(0) resets the states)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

import edgevlm  # noqa: E402


@pytest.fixture(scope="module")
def source(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("q46") / "fp32"
    edgevlm.export(str(tiny("minicpmv-4.6")), str(out), validate=False, progress=None)
    return out


def _nbits_weights(path):
    """Names of the weights MatMulNBits nodes read (their B input)."""
    model = onnx.load(str(path), load_external_data=False)
    return {node.input[1] for node in model.graph.node if node.op_type == "MatMulNBits"}


def test_w4_quantizes_the_linear_attention_projections_and_keeps_states_float32(source, tmp_path):
    manifest = edgevlm.quantize(str(source), str(tmp_path / "w4"), recipe="w4", progress=None)
    decoder = manifest.parts["decoder"]
    weights = " ".join(sorted(_nbits_weights(tmp_path / "w4" / decoder.file)))
    print(f"MatMulNBits weights: {weights}")
    for i in (0, 2):  # the linear-attention layers: packed in-projection and out_proj
        assert f"layers.{i}.linear_attn.in_proj" in weights and f"layers.{i}.linear_attn.out_proj" in weights
    for name, spec in {**decoder.inputs, **decoder.outputs}.items():
        if "conv" in name or "recurrent" in name:
            assert spec["dtype"] == "float32", (name, spec)
    assert manifest.quantization["decoder"]["method"] == "w4"
    result = edgevlm.load(str(tmp_path / "w4")).generate("Describe.", max_new_tokens=6)
    assert len(result.token_ids) == 6


@pytest.mark.slow
def test_accuracy_report_on_the_hybrid_decoder(source, tmp_path):
    same = edgevlm.quantize.report(str(source), str(source), greedy_tokens=8, max_positions=64)
    assert same["top1_agreement"] == 1.0 and same["mean_kl"] < 1e-9 and min(same["greedy_identical_prefix"]) == 8
    manifest = edgevlm.quantize(str(source), str(tmp_path / "w8"), recipe="w8", report=True, progress=None)
    table = manifest.quantization["report"]
    print({k: table[k] for k in ("positions", "top1_agreement", "mean_kl", "vision_cosine_min")})
    # tiny random weights: top-1 margins are thin (fp16 decoder alone: 0.98; w8 decoder alone 0.91, rows8 embedding alone 0.91)
    assert table["positions"] >= 200 and table["top1_agreement"] >= 0.8 and table["vision_cosine_min"] > 0.99
