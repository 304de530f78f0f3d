"""The format table (options a format does not take are errors), and what long commands print."""

from __future__ import annotations

import io
import logging
import time

import pytest

from edgevlm.errors import EdgeVLMError
from edgevlm.formats import FORMATS, check_options, export_dtype, get_format
from edgevlm.progress import Progress, quiet_third_party


def test_an_option_for_another_format_names_the_formats_that_take_it():
    with pytest.raises(EdgeVLMError, match="--block-size applies to onnx and coreml bundles, and this quantize is gguf"):
        check_options(get_format("gguf"), {"block_size": 64}, "quantize")
    with pytest.raises(EdgeVLMError, match="--decoder-graph applies to onnx bundles, and this export is coreml"):
        check_options(get_format("coreml"), {"decoder_graph": "fused"}, "export")
    with pytest.raises(EdgeVLMError, match="--head-bits 6 is not one of 4, 8"):
        check_options(get_format("onnx"), {"head_bits": 6}, "quantize")
    assert check_options(get_format("onnx"), {"block_size": 64, "symmetric": None}, "quantize") == {"block_size": 64}


def test_dtypes_have_one_spelling():
    assert export_dtype(get_format("gguf"), "f16") == "fp16" and export_dtype(get_format("onnx"), None) == "fp32"
    assert export_dtype(get_format("coreml"), None) == "fp16"
    with pytest.raises(EdgeVLMError, match="dtype 'int8' is not available for format onnx"):
        export_dtype(get_format("onnx"), "int8")
    with pytest.raises(EdgeVLMError, match="unknown format 'tflite'"):
        get_format("tflite")
    assert set(FORMATS) == {"onnx", "gguf", "coreml"}


def test_progress_is_plain_lines_off_a_terminal():
    out = io.StringIO()
    progress = Progress(out, live=False)
    progress("exporting vision")
    progress("exporting decoder")
    progress.close()
    assert out.getvalue() == "[edgevlm] exporting vision\n[edgevlm] exporting decoder\n"


def test_progress_on_a_terminal_updates_one_line_per_stage_with_its_time():
    out = io.StringIO()
    progress = Progress(out, live=True)
    progress("exporting vision")
    time.sleep(1.2)  # the ticker redraws the live line while the stage runs
    progress("exporting decoder")
    progress.close()
    text = out.getvalue()
    assert text.count("exporting vision ... ") >= 3  # drawn, redrawn at least once, finished
    assert "exporting vision ... done in" in text and "exporting decoder ... done in" in text
    assert text.count("\n") == 2 and "\r" in text


def test_third_party_notices_are_hidden_and_restored(caplog):
    root = logging.getLogger()
    level = root.level
    with quiet_third_party():
        logging.warning("Please consider to run pre-processing before quantization.")  # onnxruntime's advice
    assert root.level == level
    assert "pre-processing" not in caplog.text
