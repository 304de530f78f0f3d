"""MiniCPM-V 4.6's hybrid decoder (issue 17's figures): decode speed against context, side by side with llama.cpp,
and the chunked prefill against the token-by-token recurrence.

    python benchmarks/bench_hybrid.py [MODEL] [--runs 3] [--steps 16] [--threads 2] [--json OUT]

MODEL: ``minicpmv4.6-0.8b`` (benchmarks/models.py: real-size random weights, the default) or
``tiny-minicpmv4.6`` (the smoke run: structure only, its speeds mean nothing). Bundles are built once
in the benchmark cache (models.py).

1. decode: compare_text.py's protocol, each engine in its own process: our w4 ONNX bundle and llama.cpp
   Q4_0 of the same weights (our GGUF export, quantized by llama.cpp), tokens/s at context 128 and 1024.
   A hybrid's per-token cost should stay nearly flat with context (18 of its 24 layers keep a fixed-size
   recurrent state): ``flatness`` = (ms per token at 1024) / (ms per token at 128), target <= 1.1.
2. prefill: our fp32 ONNX bundle through the runtime's backend; T prompt tokens in one call (the chunked
   gated delta rule: 64-token chunks in a Loop) against T calls of one token each (the recurrence a
   runtime without the chunked form would run), T = 128 and 1024; tokens/s, median of runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import cpu_info  # noqa: E402
import models  # noqa: E402

DECODE_ENGINES = ("ours-onnx-w4", "llamacpp-q4_0")
PREFILL_TOKENS = (128, 1024)


def decode_rows(model: str, runs: int, steps: int, threads: int) -> list[dict[str, Any]]:
    """compare_text.py for each engine in a child process (clean RSS and thread pools); flatness added."""
    rows = []
    for engine in DECODE_ENGINES:
        models.ENGINE_BUILDS[engine](model)  # build in this process (cached), measure in a fresh one
        cmd = [sys.executable, str(HERE / "compare_text.py"), engine, model, "--runs", str(runs), "--steps",
               str(steps), "--threads", str(threads)]
        env = {**os.environ, "EDGEVLM_BENCH_CACHE": str(models.CACHE.parent), "OMP_NUM_THREADS": str(threads)}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
        row = json.loads(proc.stdout[proc.stdout.index("{"):])
        at128 = row["decode_tokens_per_s_ctx128"]["median"]
        at1024 = row["decode_tokens_per_s_ctx1024"]["median"]
        row["flatness_1024_vs_128"] = round(at128 / at1024, 3)  # ms/token ratio = inverse tokens/s ratio
        rows.append(row)
    return rows


def _median_time(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def prefill_rows(model: str, runs: int, threads: int) -> list[dict[str, Any]]:
    """Chunked prefill (one call) vs the recurrence (one call per token) on the fp32 ONNX bundle."""
    import edgevlm

    bundle = models.onnx_bundle(model, "fp32")
    vlm = edgevlm.load(str(bundle), threads=threads)
    backend = vlm.backend
    image_id = vlm.manifest.tokenizer.image_token_id
    ids = np.random.default_rng(0).integers(3, 250, max(PREFILL_TOKENS)).astype(np.int64)
    ids[ids == image_id] = 3  # a placeholder id would need image features
    backend.rewind(0)
    backend.forward(ids[:16])  # warm-up, untimed: first-call graph setup (both branches of the If)
    backend.forward(ids[16:17])
    rows = []
    for t in PREFILL_TOKENS:
        def chunked():
            backend.rewind(0)
            backend.forward(ids[:t])

        def recurrence():
            backend.rewind(0)
            for i in range(t):
                backend.forward(ids[i:i + 1])

        c, r = _median_time(chunked, runs), _median_time(recurrence, max(1, runs if t <= 128 else 1))
        rows.append({"tokens": t, "chunked_tokens_per_s": round(t / c, 1), "recurrence_tokens_per_s": round(t / r, 1),
                     "speedup": round(r / c, 2)})
        models.log(f"{model} prefill {t}: chunked {t / c:.0f} tok/s, recurrence {t / r:.0f} tok/s, {r / c:.1f}x")
    vlm.close()
    return rows


def markdown(result: dict[str, Any]) -> str:
    lines = [f"{result['model']} ({result['threads']} threads, {result['cpu']}; ISA: {result.get('isa', '?')})", "",
             "| engine | decode tok/s ctx 128 | ctx 1024 | ms/token 1024 vs 128 |", "|---|---:|---:|---:|"]
    for row in result["decode"]:
        lines.append(f"| {row['label']} | {row['decode_tokens_per_s_ctx128']['median']:.2f} | "
                     f"{row['decode_tokens_per_s_ctx1024']['median']:.2f} | {row['flatness_1024_vs_128']:.3f}x |")
    lines += ["", "| prompt tokens | chunked prefill tok/s | token-by-token tok/s | speed-up |", "|---:|---:|---:|---:|"]
    for row in result["prefill"]:
        lines.append(f"| {row['tokens']} | {row['chunked_tokens_per_s']:.0f} | {row['recurrence_tokens_per_s']:.0f} | "
                     f"{row['speedup']:.1f}x |")
    return "\n".join(lines)


def run(model: str, runs: int = 3, steps: int = 16, threads: int = 2) -> dict[str, Any]:
    cpu = cpu_info.cpu()
    return {"model": model, "threads": threads, "cpu": cpu["model"], "isa": cpu["isa"], "runs": runs, "steps": steps,
            "decode": decode_rows(model, runs, steps, threads), "prefill": prefill_rows(model, runs, threads)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", nargs="?", default="minicpmv4.6-0.8b", choices=[n for n, s in models.MODELS.items()
                                                                             if s.kind == "minicpmv4_6"])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="also write the result here")
    args = ap.parse_args()
    result = run(args.model, args.runs, args.steps, args.threads)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))


if __name__ == "__main__":
    main()
