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
    import bench_speculative
    import compare_text
    import compare_ttft
    import compare_vision
    import models
    import report
    import roofline
    import run_all

    saved = models.CACHE
    models.CACHE = tmp_path_factory.mktemp("bench-cache") / "suite"
    yield {"models": models, "text": compare_text, "vision": compare_vision, "roofline": roofline,
           "run_all": run_all, "ttft": compare_ttft, "report": report, "speculative": bench_speculative}
    models.CACHE = saved


def _check_stats(stats):
    assert set(stats) >= {"median", "min", "max", "n"}
    assert 0 < stats["min"] <= stats["median"] <= stats["max"]


def test_bandwidth_measurement_is_positive(bench):
    bw = bench["roofline"].measure_bandwidth(size_mib=16, repeats=2, threads=2)
    assert bw["read_gb_s"] > 0 and bw["copy_gb_s"] > 0
    lo, hi = bw["read_gb_s_min_max"]
    assert lo <= bw["read_gb_s"] <= hi


def test_cpu_flags_and_kernels_follow_mlas_dispatch_rules():
    import cpu_info

    zen3 = "model name\t: AMD EPYC\nflags\t\t: fpu sse2 avx fma f16c avx2 bmi2\n"
    spr = ("model name\t: Intel(R) Xeon(R) Platinum 8480C\nflags\t\t: avx2 fma f16c avx512f avx512dq avx512bw "
           "avx512vl avx512_vnni avx512_bf16 avx_vnni amx_bf16 amx_tile amx_int8\n")
    a, b = cpu_info.cpu(zen3), cpu_info.cpu(spr)
    assert a["model"] == "AMD EPYC" and a["isa"] == "AVX2 FMA F16C (no AVX-512, no VNNI, no BF16, no AMX)"
    assert b["flags"]["amx_int8"] and "AVX512-VNNI" in b["isa"] and "(no" not in b["isa"]
    ka, kb = cpu_info.onnxruntime_kernels(a["flags"]), cpu_info.onnxruntime_kernels(b["flags"])
    assert ka["matmul_nbits"].startswith("SQNBitGemm AVX2") and ka["matmul_integer"] == "QGEMM U8S8 AVX2"
    assert kb["matmul_nbits"] == "SQNBitGemm AVX512-VNNI" and "AMX" in kb["matmul_integer"]
    assert "AVX2" in cpu_info.llamacpp_system_info()  # the installed build's own report


def test_suite_end_to_end_on_tiny_model(bench, tmp_path):
    text, vision, run_all, report = bench["text"], bench["vision"], bench["run_all"], bench["report"]
    engines = ("ours-onnx-fp32", "ours-onnx-w4", "ours-gguf-q4_0", "llamacpp-q4_0", "torch-eager", "genai-fp32")
    rows = [text.run_engine(engine, MODEL, runs=1, steps=2) for engine in engines]
    for row in rows[:5]:
        for key in ("prefill_tokens_per_s", "decode_tokens_per_s_ctx128", "decode_tokens_per_s_ctx1024"):
            _check_stats(row[key])
        assert row["weights_read_mb_per_token"] > 0 and row["kv_bytes_per_position"] > 0
        assert row["peak_rss_mb"] > 0 and row["kernel"]
    assert "skipped" in rows[5]  # genai's builder is not run for the toy model: a reasoned skip row
    # The same GGUF file drives our llama.cpp backend and llama.cpp itself: same bytes per token.
    assert rows[2]["weights_read_mb_per_token"] == rows[3]["weights_read_mb_per_token"]
    assert rows[1]["kernel"].startswith("MatMulNBits 4-bit b32 asym, head 8-bit") and "ggml" in rows[3]["kernel"]

    seen = [vision.run_engine(engine, MODEL, runs=1) for engine in ("ours-onnx-fp32", "ours-onnx-int8", "torch-eager",
                                                                    "mtmd")]
    assert all(r["chunks"] == 3 for r in seen)  # 1000x500: overview + 2 slices, in every engine
    _check_stats(seen[0]["sequential_ms"]), _check_stats(seen[0]["batched_ms"])
    _check_stats(seen[2]["batched_ms"]), _check_stats(seen[3]["sequential_ms"])
    assert 0.9 < seen[1]["feature_cosine_vs_fp32"] <= 1.0 and "MatMulInteger" in seen[1]["kernel"]

    ttft = [bench["ttft"].run_engine(engine, MODEL, runs=1) for engine in ("ours-onnx-fp32", "llamacpp-mtmd")]
    for r in ttft:
        _check_stats(r["ttft_ms"])
        assert r["prompt_tokens"] > 3 * 64 and r["peak_rss_mb"] > 0  # the image's 3 chunks are in the prompt
    assert set(ttft[0]["stages_ms"]) == {"image_load_and_preprocessing", "vision", "prefill"}
    assert sum(ttft[0]["stages_ms"].values()) <= ttft[0]["ttft_ms"]["median"] + 1

    lookup = bench["speculative"].run("ours-onnx-fp32", MODEL, draft=4, runs=1, max_tokens=12, threads=2)["rows"]
    assert [r["prompts"] for r in lookup] == ["repeats its input", "does not repeat"]
    assert all(r["identical"] and r["tokens_per_forward"] >= 1 for r in lookup)

    suite = {"started": "now", "machine": run_all.machine(), "kernels": bench["run_all"].cpu_info.machine_kernels(),
             "versions": run_all.versions(), "commit": run_all.commit(), "threads": 2,
             "load_average": {"start": 0.0, "end": 0.0}, "under_load": False, "wall_s": 1.0,
             "bandwidth": {"read_gb_s": 10.0, "read_gb_s_min_max": [9.0, 11.0], "copy_gb_s": 8.0, "method": "test"},
             "models": [{"name": MODEL, "description": "tiny", "threads": 2, "text": rows, "vision": seen,
                         "image_desc": "1000x500 image", "ttft": ttft, "speculative": lookup}]}
    out = tmp_path / "results"
    run_all.finish(suite, out)

    saved = json.loads((out / "suite.json").read_text())
    model = saved["models"][0]
    assert model["text"][0]["roofline"]["ctx128"] > 0
    assert saved["kernels"]["cpu"]["isa"] and saved["kernels"]["onnxruntime"]["matmul_nbits"]
    names = {t["target"] for t in model["targets"]}
    for what in ("PyTorch", "mtmd f16", "roofline", "llama.cpp Q4_0, context 1024", "TTFT edgevlm ONNX fp32",
                 "peak RSS, text", "peak RSS, image turn"):
        assert any(what in n for n in names), what
    goals = {t["target"]: t["goal"] for t in model["targets"]}
    assert goals["decode w4 ONNX (default recipe) / llama.cpp Q4_0, context 128"] == report.DECODE_VS_LLAMACPP
    table = (out / "suite.md").read_text()
    assert "| edgevlm ONNX fp32 |" in table and "Targets (issue 22)" in table and "ISA: " in table
    assert "MatMulNBits" in table and "measured end to end" in table and "not the base decode speed" in table
    for png in model["plots"]:
        assert (out / png).stat().st_size > 1000
    assert len(model["plots"]) == 3


def test_paligemma_vision_and_ttft_on_tiny_model(bench, tmp_path):
    """PaliGemma-class rows: one fixed-size chunk of 256 tokens in ours and PyTorch, mtmd a reasoned skip."""
    text, vision, report = bench["text"], bench["vision"], bench["report"]
    model = "tiny-paligemma"
    rows = [text.run_engine("ours-onnx-fp32", model, runs=1, steps=2)]
    _check_stats(rows[0]["decode_tokens_per_s_ctx128"])
    seen = [vision.run_engine(engine, model, runs=1) for engine in ("ours-onnx-fp32", "torch-eager", "mtmd")]
    for r in seen[:2]:
        assert r["chunks"] == 1 and r["image_tokens"] == 256
        _check_stats(r["batched_ms"])
    assert "mtmd" in seen[2]["skipped"]
    ttft = [bench["ttft"].run_engine(engine, model, runs=1) for engine in ("ours-onnx-fp32", "llamacpp-mtmd")]
    assert ttft[0]["prompt_tokens"] > 256 and "mtmd" in ttft[1]["skipped"]
    assert {t["target"] for t in report.targets(rows, seen, ttft)} >= {
        "vision fp32 / PyTorch eager fp32 (batched chunks)"}


@pytest.mark.slow
@pytest.mark.parametrize("model, tokens", [("tiny-smolvlm", 4), ("tiny-internvl", 16)])
def test_tiled_models_text_vision_and_ttft(bench, tmp_path, model, tokens):
    """SmolVLM / InternVL-class rows on their tiny models (issue 18's figures): text speed (our ONNX fp32 and
    GGUF Q4_0 backend vs llama.cpp Q4_0 on the same file vs PyTorch), vision of one 1024x768 image
    (13 tiles: ours fp32 / int8 sequential and batched, PyTorch, mtmd) and the measured TTFT."""
    text, vision = bench["text"], bench["vision"]
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
    ttft = [bench["ttft"].run_engine(engine, model, runs=1) for engine in ("ours-onnx-fp32", "llamacpp-mtmd")]
    for r in ttft:  # the 13 tiles' image tokens and the chat text around them
        assert r["image"] == [1024, 768] and r["prompt_tokens"] > 13 * tokens, r
        _check_stats(r["ttft_ms"])


@pytest.mark.slow
def test_llava_onevision_rows_on_tiny_model(bench):
    """LLaVA-OneVision-class rows (issue 20's figures): text engines incl. llama.cpp on the same text.gguf and
    PyTorch; vision for ours / PyTorch (same tiles, same packed token count) / mtmd (its own tiling); TTFT."""
    text, vision = bench["text"], bench["vision"]
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
    ttft = {r["engine"]: r for r in (bench["ttft"].run_engine(e, model, runs=1)
                                      for e in ("ours-onnx-fp32", "llamacpp-mtmd"))}
    assert ttft["ours-onnx-fp32"]["prompt_tokens"] > ours["image_tokens"]  # image rows + the chat text
    assert ttft["llamacpp-mtmd"]["prompt_tokens"] > mtmd["image_tokens"]


@pytest.mark.slow
def test_qwen2vl_figures_on_tiny_model(bench, tmp_path):
    """Issue 19's benchmark (bench_qwen2vl.py) on the tiny Qwen2-VL: vision at both resolutions, end-to-end
    TTFT and decode rows are well formed and the report is written. Structure only."""
    import bench_qwen2vl
    import native_vision

    text = bench["text"]
    vision = native_vision.run_engine("ours-onnx-fp32", "tiny-qwen2vl", runs=1, threads=1)
    ttft = native_vision.run_engine("ttft-llamacpp-mtmd", "tiny-qwen2vl", runs=1, threads=1)
    for row, figure in ((vision, "vision_ms"), (ttft, "ttft_ms")):
        assert set(row["figures"]) == set(native_vision.RESOLUTIONS)
        for res in row["figures"].values():
            _check_stats(res[figure])
    assert [vision["figures"][k]["image_tokens"] for k in native_vision.RESOLUTIONS] == [256, 1024]
    decode = text.run_engine("ours-gguf-q4_0", "tiny-qwen2vl", runs=1, steps=2)
    _check_stats(decode["decode_tokens_per_s_ctx1024"])
    result = {"started": "now", "model": "tiny-qwen2vl", "threads": 1, "runs": 1, "machine": bench["run_all"].machine(),
              "commit": {"sha": "0" * 40}, "load_average": {"start": 0, "end": 0}, "vision": [vision],
              "ttft": [ttft], "text": [decode]}
    table = bench_qwen2vl.markdown(result)
    assert "256 tokens" in table and result["machine"]["cpu"] in table
    assert len(bench_qwen2vl.plot(result, tmp_path)) == 2
