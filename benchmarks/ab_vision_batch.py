"""Vision batch size: wall time and peak RSS of one tiled image, per batching policy, side by side.

    python benchmarks/ab_vision_batch.py [--model smolvlm-256m] [--recipe fp32] [--runs 3] [--threads 2] [--out DIR]

The runtime caps a vision run at ``BATCH_PATCHES`` patches (runtime/backends/vision_batch.py). Policies:
"one chunk" (1 chunk per run), "default" (the cap), "all chunks" (no cap: the manifest's max_batch, the
runtime's behaviour before the cap). Each policy runs in a process of its own (clean peak RSS: onnxruntime's
memory arena grows with the largest batch and never shrinks), the policies interleaved over ``runs`` rounds
so a drifting machine load hits them alike; each process warms up once on the same image. Writes
DIR/vision_batch.json and .md with the CPU named.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import cpu_info  # noqa: E402
import models  # noqa: E402

POLICIES = {"one chunk": 1, "default": None, "all chunks": 10 ** 9}  # policy -> batch_patches (None: default)


def measure(model: str, recipe: str, policy: str, threads: int) -> dict:
    """One process: the bundle's vision part on compare_vision's image under ``policy`` (warm-up, then timed)."""
    from compare_vision import _image
    import vision_features
    from edgevlm.runtime.backends.vision_batch import BATCH_PATCHES
    from edgevlm.runtime.images import prepare_image

    encode, cfg = vision_features.encoder(models.onnx_bundle(model, recipe), threads, POLICIES[policy])
    prepared = prepare_image(_image(model), cfg)
    encode(prepared)  # warm-up: the arena grows to this policy's batch
    t0 = time.perf_counter()
    encode(prepared)
    wall = (time.perf_counter() - t0) * 1e3
    return {"policy": policy, "batch_patches": POLICIES[policy] or BATCH_PATCHES, "wall_ms": round(wall, 1),
            "chunks": int(prepared.inputs["pixel_values"].shape[0]),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smolvlm-256m", choices=list(models.MODELS))
    ap.add_argument("--recipe", default="fp32")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--policy", choices=list(POLICIES), help=argparse.SUPPRESS)  # the child's one measurement
    args = ap.parse_args()
    if args.policy:
        print(json.dumps(measure(args.model, args.recipe, args.policy, args.threads)))
        return
    models.onnx_bundle(args.model, args.recipe)  # build (cached) before anything is timed
    rows: dict[str, list[dict]] = {p: [] for p in POLICIES}
    for round_ in range(args.runs):
        for policy in POLICIES:
            out = subprocess.run([sys.executable, __file__, "--model", args.model, "--recipe", args.recipe,
                                  "--threads", str(args.threads), "--policy", policy],
                                 capture_output=True, text=True, check=True)
            rows[policy].append(json.loads(out.stdout.strip().splitlines()[-1]))
            models.log(f"round {round_ + 1} {policy}: {rows[policy][-1]}")
    cpu = cpu_info.cpu()
    table = [{"policy": p, "batch_patches": r[0]["batch_patches"], "chunks": r[0]["chunks"],
              "wall_ms_median": statistics.median(x["wall_ms"] for x in r),
              "wall_ms_min_max": [min(x["wall_ms"] for x in r), max(x["wall_ms"] for x in r)],
              "peak_rss_mb_median": statistics.median(x["peak_rss_mb"] for x in r)} for p, r in rows.items()]
    base = next(t for t in table if t["policy"] == "all chunks")
    lines = [f"Vision batch policy, {args.model} {args.recipe}, one {table[0]['chunks']}-chunk image; "
             f"{cpu['model']} ({cpu['isa']}), {args.threads} threads, median of {args.runs} processes each "
             f"(interleaved), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", "",
             "| policy | patches per run | wall ms (min–max) | vs all chunks | peak RSS MB | vs all chunks |",
             "|---|---:|---:|---:|---:|---:|"]
    for t in table:
        cap = {1: "1 chunk", 10 ** 9: "no cap"}.get(t["batch_patches"], t["batch_patches"])
        lines.append(f"| {t['policy']} | {cap} | {t['wall_ms_median']:.0f} ({t['wall_ms_min_max'][0]:.0f}–"
                     f"{t['wall_ms_min_max'][1]:.0f}) | {t['wall_ms_median'] / base['wall_ms_median']:.2f}× | "
                     f"{t['peak_rss_mb_median']:.0f} | {t['peak_rss_mb_median'] / base['peak_rss_mb_median']:.2f}× |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "vision_batch.json").write_text(json.dumps({"model": args.model, "recipe": args.recipe, "cpu": cpu,
                                                       "threads": args.threads, "rows": rows, "table": table},
                                                      indent=2) + "\n")
    (out / "vision_batch.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
