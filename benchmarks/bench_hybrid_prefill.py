"""Hybrid (Qwen3.5) decoder in ONNX: chunked prefill vs the token-by-token recurrence, and decode vs context.

One exported graph (edgevlm/export/onnx_hybrid_decoder.py) serves both: a call with T > 1 tokens runs
the chunked gated delta rule (one Loop over T/64 chunks); T calls with one token each run the
recurrent step T times, which is what a runtime without the chunked form would do. Decode is timed
as one token after a context of 128 and 1024 tokens (a hybrid's linear layers cost the same at any
context; only its few full-attention layers grow).

    python benchmarks/bench_hybrid_prefill.py --size small     # random small model, seconds
    python benchmarks/bench_hybrid_prefill.py --size real      # MiniCPM-V 4.6's Qwen3.5-0.8B text dims
                                                               # (random weights, ~3.5 GB fp32 graph)
Indicative only on a shared machine: the script interleaves nothing and reports the median of runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

LINEAR, FULL = "linear_attention", "full_attention"
SIZES = {
    # MiniCPM-V 4.6's text model (openbmb/MiniCPM-V-4.6 config.json text_config), vocabulary included
    "real": dict(hidden_size=1024, intermediate_size=3584, num_hidden_layers=24, num_attention_heads=8,
                 num_key_value_heads=2, head_dim=256, linear_num_key_heads=16, linear_num_value_heads=16,
                 linear_key_head_dim=128, linear_value_head_dim=128, vocab_size=248094),
    # the same shape of layer at a quarter of the width: 8 layers, 3 linear : 1 full
    "small": dict(hidden_size=256, intermediate_size=896, num_hidden_layers=8, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=64, linear_num_key_heads=4, linear_num_value_heads=8,
                  linear_key_head_dim=64, linear_value_head_dim=64, vocab_size=4096),
}


def build(size: str, out: Path):
    """Export a random Qwen3.5 text model of ``size``; returns (onnx session, part extra, hidden)."""
    import onnxruntime as ort
    import torch
    from transformers import Qwen3_5ForCausalLM, Qwen3_5TextConfig

    from edgevlm.export.onnx_hybrid_decoder import export_hybrid_decoder

    dims = SIZES[size]
    layers = [FULL if (i + 1) % 4 == 0 else LINEAR for i in range(dims["num_hidden_layers"])]
    rope = {"rope_type": "default", "rope_theta": 1e7, "partial_rotary_factor": 0.25}
    config = Qwen3_5TextConfig(**dims, layer_types=layers, linear_conv_kernel_dim=4, tie_word_embeddings=True,
                               rope_parameters=rope)
    torch.manual_seed(0)
    model = Qwen3_5ForCausalLM(config).eval()
    part = export_hybrid_decoder(model.model, model.lm_head, config, out)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(out / part.file), options, providers=["CPUExecutionProvider"])
    return session, part.extra, dims["hidden_size"]


def median_seconds(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(session, extra, hidden: int, lengths: list[int], runs: int) -> list[dict]:
    from edgevlm.export.onnx_hybrid_session import HybridSession

    rng = np.random.default_rng(0)
    rows = []
    for length in lengths:
        embeds = rng.standard_normal((1, length, hidden)).astype(np.float32) * 0.02
        positions = np.arange(length)[None]
        loop = HybridSession(session, extra)

        def chunked():
            loop.reset()
            loop.step(embeds, positions, all_logits=False)

        def recurrence():
            loop.reset()
            for t in range(length):
                loop.step(embeds[:, t:t + 1], positions[:, t:t + 1], all_logits=False)

        def decode_after_context():
            loop.restore(context)
            loop.step(embeds[:, :1], np.array([[length]]), all_logits=False)

        chunk_s = median_seconds(chunked, runs)
        recur_s = median_seconds(recurrence, max(1, runs // 2))
        loop.reset()
        loop.step(embeds, positions, all_logits=False)
        context = loop.snapshot()
        decode_s = median_seconds(decode_after_context, runs * 4)
        rows.append({"tokens": length, "chunked_tok_s": length / chunk_s, "recurrence_tok_s": length / recur_s,
                     "speedup": recur_s / chunk_s, "decode_ms": decode_s * 1e3})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 1024])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        session, extra, hidden = build(args.size, Path(tmp))
        rows = measure(session, extra, hidden, args.lengths, args.runs)
    print("| model | prompt tokens | chunked prefill tok/s | token-by-token tok/s | speed-up "
          "| decode ms/token after the prompt |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {args.size} | {r['tokens']} | {r['chunked_tok_s']:.0f} | {r['recurrence_tok_s']:.0f} | "
              f"{r['speedup']:.1f}x | {r['decode_ms']:.2f} |")


if __name__ == "__main__":
    main()
