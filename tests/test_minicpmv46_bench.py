"""benchmarks/bench_hybrid.py (issue 17's figures) on the tiny MiniCPM-V 4.6: every measurement returns
well-formed rows. Structure only: speeds on a toy model mean nothing (slow tier: it builds four bundles)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

pytestmark = pytest.mark.slow


def test_hybrid_benchmark_on_the_tiny_model(tmp_path, monkeypatch):
    pytest.importorskip("llama_cpp")
    import bench_hybrid
    import models

    monkeypatch.setattr(models, "CACHE", tmp_path / "suite")
    result = bench_hybrid.run("tiny-minicpmv4.6", runs=1, steps=2)
    assert [r["engine"] for r in result["decode"]] == list(bench_hybrid.DECODE_ENGINES)
    for row in result["decode"]:
        assert row["decode_tokens_per_s_ctx128"]["median"] > 0 and row["decode_tokens_per_s_ctx1024"]["median"] > 0
        assert row["flatness_1024_vs_128"] > 0
    assert [r["tokens"] for r in result["prefill"]] == list(bench_hybrid.PREFILL_TOKENS)
    assert all(r["chunked_tokens_per_s"] > 0 and r["recurrence_tokens_per_s"] > 0 for r in result["prefill"])
    table = bench_hybrid.markdown(result)
    assert "llama.cpp Q4_0" in table and "chunked prefill" in table
