"""ONNX quantization recipes: new bundle, the quantized ops are there, sizes shrink, it still runs,
and the accuracy report refuses to compare different models."""

from __future__ import annotations

import json

import pytest

import edgevlm
from edgevlm.errors import EdgeVLMError
from edgevlm.quantize.recipes import plan


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    from edgevlm.families.tiny import make_tiny

    root = tmp_path_factory.mktemp("quant")
    ckpt = make_tiny("minicpmv-2.6", root / "ckpt")
    edgevlm.export(str(ckpt), str(root / "fp32"), progress=None)
    return root / "fp32"


@pytest.mark.parametrize("recipe,decoder_op,max_ratio", [("w4", "MatMulNBits", 0.30), ("int8", "MatMulInteger", 0.30)])
def test_recipe_quantizes_the_decoder(source, tmp_path, recipe, decoder_op, max_ratio):
    manifest = edgevlm.quantize(str(source), str(tmp_path / recipe), recipe=recipe, progress=None)
    record = manifest.quantization["decoder"]
    assert record["method"] == recipe and record["quantized_ops"].get(decoder_op, 0) > 0
    assert record["quantized_weights_ratio"] <= max_ratio, record
    if recipe == "w4":
        assert record["ratio"] <= 0.30 and record["block_size"] == 32  # whole decoder file vs fp32
    result = edgevlm.load(str(tmp_path / recipe)).generate("Describe.", max_new_tokens=4)
    assert len(result.token_ids) == 4


def test_head_bits_choose_the_output_heads_precision(source, tmp_path):
    """w4 keeps the logits MatMul at 8 bits by default; --head-bits 4 quantizes it with the rest."""
    import onnx

    def head_bits(bundle):
        decoder = onnx.load(str(bundle / "decoder.onnx"), load_external_data=False)
        bits = [{a.name: onnx.helper.get_attribute_value(a) for a in n.attribute} for n in decoder.graph.node
                if n.op_type == "MatMulNBits"]
        vocab = decoder.graph.output[0].type.tensor_type.shape.dim[-1].dim_value
        return {b["bits"] for b in bits if b["N"] == vocab}, {b["bits"] for b in bits if b["N"] != vocab}

    default = edgevlm.quantize(str(source), str(tmp_path / "h8"), recipe="w4", progress=None)
    assert head_bits(tmp_path / "h8") == ({8}, {4}) and default.quantization["decoder"]["head_bits"] == 8
    fast = edgevlm.quantize(str(source), str(tmp_path / "h4"), recipe="w4", head_bits=4, progress=None)
    assert head_bits(tmp_path / "h4") == ({4}, {4}) and fast.quantization["decoder"]["head_bits"] == 4
    assert fast.quantization["decoder"]["size_after"] < default.quantization["decoder"]["size_after"]
    with pytest.raises(EdgeVLMError, match="--head-bits 3 is not one of 4, 8"):
        edgevlm.quantize(str(source), str(tmp_path / "h3"), recipe="w4", head_bits=3, progress=None)


def test_manifest_names_each_parts_external_data_file(source, tmp_path, monkeypatch):
    """A quantized part may fit in one file where its source did not, or the other way round: the manifest
    names the side file only when it exists (the threshold is lowered to force side files)."""
    from edgevlm.quantize import onnx as quantize_onnx

    inline = edgevlm.quantize(str(source), str(tmp_path / "inline"), recipe="w4", progress=None)
    monkeypatch.setattr(quantize_onnx, "EXTERNAL_DATA_THRESHOLD", 0)
    split = edgevlm.quantize(str(source), str(tmp_path / "split"), recipe="w4", progress=None)
    for manifest, root in ((inline, tmp_path / "inline"), (split, tmp_path / "split")):
        for part in manifest.parts.values():
            data = root / (part.file + ".data")
            assert part.data_files == ([data.name] if data.exists() else []), (root.name, part.file)
    assert inline.parts["decoder"].data_files == []
    assert split.parts["decoder"].data_files == ["decoder.onnx.data"]
    assert len(edgevlm.load(str(tmp_path / "split")).generate("Describe.", max_new_tokens=2).token_ids) == 2


def test_mixed_keeps_vision_gentle_and_overrides_apply(source, tmp_path):
    manifest = edgevlm.quantize(str(source), str(tmp_path / "mixed"), recipe="mixed", overrides={"vision": "none"},
                                progress=None)
    assert manifest.quantization["decoder"]["method"] == "w4"
    assert manifest.quantization["vision"]["method"] == "none"
    assert manifest.quantization["embedding"]["method"] == "rows8"


def test_report_is_stored_and_sane(source, tmp_path):
    manifest = edgevlm.quantize(str(source), str(tmp_path / "w8"), recipe="w8", report=True, progress=None)
    table = manifest.quantization["report"]
    assert table["positions"] >= 200
    assert 0.5 <= table["top1_agreement"] <= 1.0 and table["mean_kl"] >= 0
    assert table["vision_cosine_min"] > 0.99
    again = edgevlm.quantize.report(str(source), str(tmp_path / "w8"))  # the public function on finished bundles
    assert again["top1_agreement"] == table["top1_agreement"]
    import subprocess
    import sys

    shown = subprocess.run([sys.executable, "-m", "edgevlm.cli", "inspect", str(tmp_path / "w8")],
                           capture_output=True, text=True, check=True).stdout
    assert "parity (of the source bundle)" in shown and f"{table['top1_agreement']:.4f}" in shown


def test_source_against_itself_agrees_fully(source):
    table = edgevlm.quantize.report(str(source), str(source), greedy_tokens=8)
    assert table["top1_agreement"] == 1.0 and table["mean_kl"] < 1e-9 and min(table["greedy_identical_prefix"]) == 8


def test_report_refuses_different_models(source, tmp_path):
    from edgevlm.families.tiny import make_tiny

    other = make_tiny("minicpmv-4.5", tmp_path / "ckpt45")
    edgevlm.export(str(other), str(tmp_path / "b45"), progress=None)
    with pytest.raises(EdgeVLMError, match="not the same model"):
        edgevlm.quantize.report(str(source), str(tmp_path / "b45"))


def test_never_in_place_and_unknown_recipe(source, tmp_path):
    with pytest.raises(EdgeVLMError, match="never changes its input"):
        edgevlm.quantize(str(source), str(source), recipe="w4", progress=None)
    with pytest.raises(EdgeVLMError, match="unknown recipe 'w3'"):
        edgevlm.quantize(str(source), str(tmp_path / "x"), recipe="w3", progress=None)
    assert not (tmp_path / "x").exists()
    with pytest.raises(EdgeVLMError, match="no audio part"):
        plan("w4", ["vision", "decoder"], {"audio": "w4"})


def test_manifest_records_the_source(source, tmp_path):
    edgevlm.quantize(str(source), str(tmp_path / "q"), recipe="w4", progress=None)
    data = json.loads((tmp_path / "q" / "manifest.json").read_text())
    assert data["source"]["quantized_from"] == source.name and data["quantization"]["recipe"] == "w4"
    assert data["validation"]["source"]["passed"] is True


def test_static_qdq_vision_with_calibration_images(source, tmp_path):
    from edgevlm.export.validate import test_image as make_image

    folder = tmp_path / "calibration"
    folder.mkdir()
    for i, (w, h) in enumerate([(640, 480), (300, 200)]):
        make_image(w, h, seed=i).save(folder / f"{i}.png")
    (folder / "prompts.txt").write_text("Describe the image.\n")
    manifest = edgevlm.quantize(str(source), str(tmp_path / "qdq"), recipe="qdq16", calibration=str(folder),
                                report=True, progress=None)
    vision = manifest.quantization["vision"]
    assert vision["quantized_ops"]["QuantizeLinear"] > 0 and vision["activations"] == "QUInt16"
    assert manifest.quantization["report"]["vision_cosine_min"] > 0.999
    with pytest.raises(EdgeVLMError, match="needs calibration data"):
        edgevlm.quantize(str(source), str(tmp_path / "nocal"), recipe="qdq8", progress=None)
    with pytest.raises(EdgeVLMError, match="has no images"):
        edgevlm.quantize(str(source), str(tmp_path / "empty"), recipe="qdq8", calibration=str(tmp_path),
                         progress=None)


def test_fp16_bundle_loads_and_agrees(source, tmp_path):
    """fp16 parts run (onnxruntime 1.32 crashed at ORT_ENABLE_ALL on the fp16 vision graph) and agree."""
    manifest = edgevlm.quantize(str(source), str(tmp_path / "fp16"), recipe="fp16", progress=None)
    assert manifest.parts["vision"].runtime["ort_graph_optimization"] == "extended"
    table = edgevlm.quantize.report(str(source), str(tmp_path / "fp16"), greedy_tokens=8)
    assert table["top1_agreement"] > 0.97 and table["vision_cosine_min"] > 0.9999
