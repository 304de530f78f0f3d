"""The benchmark suite's code paths on a tiny MiniCPM-V: every runner returns well-formed rows and the
report (JSON, markdown, plots) is written. Structure only: speeds on a toy model mean nothing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

MODEL = "tiny-minicpmv"


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """The benchmark modules with their cache redirected to a temporary directory."""
    import compare_text
    import compare_vision
    import models
    import roofline
    import run_all

    saved = models.CACHE
    models.CACHE = tmp_path_factory.mktemp("bench-cache")
    yield {"models": models, "text": compare_text, "vision": compare_vision, "roofline": roofline,
           "run_all": run_all}
    models.CACHE = saved


def _check_stats(stats):
    assert set(stats) >= {"median", "min", "max", "n"}
    assert 0 < stats["min"] <= stats["median"] <= stats["max"]


def test_bandwidth_measurement_is_positive(bench):
    bw = bench["roofline"].measure_bandwidth(size_mib=16, repeats=2, threads=2)
    assert bw["read_gb_s"] > 0 and bw["copy_gb_s"] > 0
    lo, hi = bw["read_gb_s_min_max"]
    assert lo <= bw["read_gb_s"] <= hi


def test_suite_end_to_end_on_tiny_model(bench, tmp_path):
    text, vision, run_all = bench["text"], bench["vision"], bench["run_all"]
    rows = [text.run_engine(engine, MODEL, runs=1, steps=2)
            for engine in ("ours-onnx-fp32", "ours-gguf-q4_0", "llamacpp-q4_0", "torch-eager", "genai-fp32")]
    for row in rows[:4]:
        for key in ("prefill_tokens_per_s", "decode_tokens_per_s_ctx128", "decode_tokens_per_s_ctx1024"):
            _check_stats(row[key])
        assert row["weights_read_mb_per_token"] > 0 and row["kv_bytes_per_position"] > 0
        assert row["peak_rss_mb"] > 0
    assert "skipped" in rows[4]  # genai's builder is not run for the toy model: a reasoned skip row
    # The same GGUF file drives our llama.cpp backend and llama.cpp itself: same bytes per token.
    assert rows[1]["weights_read_mb_per_token"] == rows[2]["weights_read_mb_per_token"]

    seen = [vision.run_engine(engine, MODEL, runs=1) for engine in ("ours-onnx-fp32", "torch-eager", "mtmd")]
    assert all(r["chunks"] == 3 for r in seen)  # 1000x500: overview + 2 slices, in every engine
    _check_stats(seen[0]["sequential_ms"]), _check_stats(seen[0]["batched_ms"])
    _check_stats(seen[1]["batched_ms"]), _check_stats(seen[2]["sequential_ms"])

    suite = {"started": "now", "machine": run_all.machine(), "versions": run_all.versions(),
             "commit": run_all.commit(), "threads": 2, "load_average": {"start": 0.0, "end": 0.0},
             "under_load": False, "wall_s": 1.0,
             "bandwidth": {"read_gb_s": 10.0, "read_gb_s_min_max": [9.0, 11.0], "copy_gb_s": 8.0, "method": "test"},
             "models": [{"name": MODEL, "description": "tiny", "threads": 2, "text": rows, "vision": seen,
                         "image_desc": "1000x500 image"}]}
    out = tmp_path / "results"
    run_all.finish(suite, out)

    saved = json.loads((out / "suite.json").read_text())
    model = saved["models"][0]
    assert model["text"][0]["roofline"]["ctx128"] > 0
    assert {r["text_engine"] for r in model["ttft"]} >= {"ours-onnx-fp32", "llamacpp-q4_0", "torch-eager"}
    for r in model["ttft"]:
        assert r["ttft_ms"] == pytest.approx(r["preprocessing_ms"] + r["vision_ms"] + r["prefill_ms"], abs=0.2)
    names = {t["target"] for t in model["targets"]}
    assert any("PyTorch" in n for n in names) and any("roofline" in n for n in names)
    table = (out / "suite.md").read_text()
    assert "| edgevlm ONNX fp32 |" in table and "Targets" in table
    for png in model["plots"]:
        assert (out / png).stat().st_size > 1000
    assert len(model["plots"]) == 3


def test_paligemma_vision_and_ttft_on_tiny_model(bench, tmp_path):
    """PaliGemma-class rows: one fixed-size chunk of 256 tokens in ours and PyTorch, mtmd a reasoned skip."""
    text, vision, run_all = bench["text"], bench["vision"], bench["run_all"]
    model = "tiny-paligemma"
    rows = [text.run_engine("ours-onnx-fp32", model, runs=1, steps=2)]
    _check_stats(rows[0]["decode_tokens_per_s_ctx128"])
    seen = [vision.run_engine(engine, model, runs=1) for engine in ("ours-onnx-fp32", "torch-eager", "mtmd")]
    for r in seen[:2]:
        assert r["chunks"] == 1 and r["image_tokens"] == 256
        _check_stats(r["batched_ms"])
    assert "mtmd" in seen[2]["skipped"]
    ttft = run_all.ttft_rows(rows, seen)
    assert [r["prompt_tokens"] for r in ttft] == [256 + run_all.TEXT_PROMPT_TOKENS]
    assert {t["target"] for t in run_all.targets(rows, seen)} >= {"vision speed-up over PyTorch eager fp32 (batched)"}


@pytest.mark.slow
@pytest.mark.parametrize("model, tokens", [("tiny-smolvlm", 4), ("tiny-internvl", 16)])
def test_tiled_models_text_vision_and_ttft(bench, tmp_path, model, tokens):
    """SmolVLM / InternVL-class rows on their tiny models (issue 18's figures): text speed (our ONNX fp32 and
    GGUF Q4_0 backend vs llama.cpp Q4_0 on the same file vs PyTorch), vision of one 1024x768 image
    (13 tiles: ours fp32 / int8 sequential and batched, PyTorch, mtmd) and the composed TTFT."""
    text, vision, run_all = bench["text"], bench["vision"], bench["run_all"]
    rows = [text.run_engine(engine, model, runs=1, steps=2)
            for engine in ("ours-onnx-fp32", "ours-gguf-q4_0", "llamacpp-q4_0", "torch-eager")]
    for row in rows:
        _check_stats(row["decode_tokens_per_s_ctx1024"])
        assert row["peak_rss_mb"] > 0
    seen = [vision.run_engine(engine, model, runs=1) for engine in ("ours-onnx-fp32", "ours-onnx-int8", "torch-eager",
                                                                    "mtmd")]
    for r in seen:
        assert r["image"] == [1024, 768] and r["chunks"] == 13 and r["image_tokens"] == 13 * tokens, r
    _check_stats(seen[0]["sequential_ms"]), _check_stats(seen[0]["batched_ms"]), _check_stats(seen[3]["sequential_ms"])
    ttft = {r["label"]: r for r in run_all.ttft_rows(rows, seen)}
    assert {"edgevlm ONNX fp32", "llama.cpp Q4_0 + mtmd", "PyTorch eager fp32"} <= set(ttft)
    assert all(r["prompt_tokens"] == 13 * tokens + run_all.TEXT_PROMPT_TOKENS for r in ttft.values())


@pytest.mark.slow
def test_llava_onevision_rows_on_tiny_model(bench):
    """LLaVA-OneVision-class rows (issue 20's figures): text engines incl. llama.cpp on the same text.gguf and
    PyTorch; vision for ours / PyTorch (same tiles, same packed token count) / mtmd (its own tiling); TTFT."""
    text, vision, run_all = bench["text"], bench["vision"], bench["run_all"]
    model = "tiny-llava-onevision"
    rows = [text.run_engine(engine, model, runs=1, steps=2)
            for engine in ("ours-onnx-fp32", "ours-gguf-q4_0", "llamacpp-q4_0", "torch-eager")]
    for row in rows:
        _check_stats(row["decode_tokens_per_s_ctx128"]), _check_stats(row["decode_tokens_per_s_ctx1024"])
        assert row["peak_rss_mb"] > 0
    seen = [vision.run_engine(engine, model, runs=1) for engine in ("ours-onnx-fp32", "torch-eager", "mtmd")]
    ours, torch_row, mtmd = seen
    assert ours["chunks"] == torch_row["chunks"] == mtmd["chunks"] > 1
    assert ours["image_tokens"] == torch_row["image_tokens"] != mtmd["image_tokens"]  # mtmd keeps every tile whole
    _check_stats(ours["batched_ms"]), _check_stats(torch_row["batched_ms"]), _check_stats(mtmd["sequential_ms"])
    ttft = {r["text_engine"]: r for r in run_all.ttft_rows(rows, seen)}
    assert ttft["ours-onnx-fp32"]["prompt_tokens"] == ours["image_tokens"] + run_all.TEXT_PROMPT_TOKENS
    assert ttft["llamacpp-q4_0"]["prompt_tokens"] == mtmd["image_tokens"] + run_all.TEXT_PROMPT_TOKENS
