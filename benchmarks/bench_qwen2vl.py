"""Issue 19's figures for a Qwen2-VL-class model: vision per image at two resolutions, decode speed at
context 128 / 1024, time to first token, peak RSS; edgevlm side by side with PyTorch eager and llama.cpp (+ mtmd).

    python benchmarks/bench_qwen2vl.py [--model qwen2-vl-2b] [--runs 3] [--steps 16] [--threads 2] [--out DIR]

Every engine runs in its own process (clean peak RSS): vision and TTFT by native_vision.py (one image per
resolution, 256 and 1024 image tokens, the budget given per request), decode by compare_text.py (the
same protocol as the rest of the suite: random ids, greedy). The model is random weights in the
published layout and dimensions (benchmarks/models.py: speed does not depend on values); models and
bundles are cached under $EDGEVLM_BENCH_CACHE. Writes DIR/qwen2vl.json, DIR/qwen2vl.md (tables, CPU named)
and DIR/qwen2vl_*.png.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import models  # noqa: E402
import run_all  # noqa: E402

VISION_ENGINES = ["ours-onnx-fp32", "ours-onnx-w4", "torch-eager", "mtmd"]
TTFT_ENGINES = ["ttft-ours-onnx-w4", "ttft-ours-gguf-q4_0", "ttft-llamacpp-mtmd", "ttft-torch-eager"]
TEXT_ENGINES = ["ours-onnx-w4", "ours-onnx-fp32", "ours-gguf-q4_0", "llamacpp-q4_0", "genai-int4", "torch-eager"]


def _cell(stats: Any, digits: int = 0) -> str:
    if not isinstance(stats, dict):
        return "–"
    return f"{stats['median']:.{digits}f} ({stats['min']:.{digits}f}–{stats['max']:.{digits}f})"


def _failed(row: dict[str, Any]) -> str | None:
    return row.get("skipped") or row.get("error")


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [f"Run {result['started']} on **{m['cpu']}** ({m['cores']} cores, {m['memory_mb'] // 1024} GiB), "
             f"{result['threads']} threads per engine, commit `{result['commit']['sha'][:10]}`; 1-minute load average "
             f"{result['load_average']['start']} at start, {result['load_average']['end']} at end. Model: "
             f"{models.spec(result['model']).description}. Medians (min–max) over {result['runs']} runs.", ""]
    resolutions = list(next((r["figures"] for r in result["vision"] if "figures" in r), {}))
    lines += ["Vision per image (ms; ours: the vision part alone, preprocessing separate):", "",
              "| engine | " + " | ".join(f"{k}: vision" for k in resolutions) + " | preprocessing | peak RSS MB |",
              "|---|" + "---:|" * (len(resolutions) + 2)]
    for r in result["vision"]:
        if _failed(r):
            lines.append(f"| {r.get('label', r['engine'])} | {_failed(r)[:120]} |")
            continue
        f = r["figures"]
        pre = " / ".join(_cell(f[k].get("preprocessing_ms")) for k in resolutions)
        lines.append(f"| {r['label']} | " + " | ".join(_cell(f[k]["vision_ms"]) for k in resolutions)
                     + f" | {pre} | {r['peak_rss_mb']:.0f} |")
    lines += ["", "Time to first token for \"Describe the image.\" + one image (ms, measured end to end):", "",
              "| pipeline | " + " | ".join(f"{k}: TTFT (prompt tokens)" for k in resolutions) + " | peak RSS MB |",
              "|---|" + "---:|" * (len(resolutions) + 1)]
    for r in result["ttft"]:
        if _failed(r):
            lines.append(f"| {r.get('label', r['engine'])} | {_failed(r)[:120]} |")
            continue
        f = r["figures"]
        lines.append(f"| {r['label']} | " + " | ".join(f"{_cell(f[k]['ttft_ms'])} ({f[k]['prompt_tokens']})"
                                                     for k in resolutions) + f" | {r['peak_rss_mb']:.0f} |")
    lines += ["", "Text (random ids, greedy; tokens/s):", "",
              "| engine | prefill (128) | decode @128 | decode @1024 | peak RSS MB |", "|---|---:|---:|---:|---:|"]
    for r in result["text"]:
        if "decode_tokens_per_s_ctx128" not in r:
            lines.append(f"| {r.get('label', r['engine'])} | {(_failed(r) or '')[:120]} | | | |")
            continue
        lines.append(f"| {r['label']} | {_cell(r['prefill_tokens_per_s'])} | {_cell(r['decode_tokens_per_s_ctx128'], 1)}"
                     f" | {_cell(r['decode_tokens_per_s_ctx1024'], 1)} | {r['peak_rss_mb']:.0f} |")
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for key, figure, title in (("vision", "vision_ms", "vision per image, ms"), ("ttft", "ttft_ms", "TTFT, ms")):
        rows = [r for r in result[key] if "figures" in r]
        if not rows:
            continue
        resolutions = list(rows[0]["figures"])
        fig, ax = plt.subplots(figsize=(9, 0.6 * len(rows) * len(resolutions) + 1.5))
        for i, res in enumerate(resolutions):
            ax.barh([j + i * 0.4 for j in range(len(rows))], [r["figures"][res][figure]["median"] for r in rows], 0.4,
                    label=res)
        ax.set_yticks([j + 0.2 for j in range(len(rows))], [r["label"] for r in rows])
        ax.set_xlabel(title)
        ax.set_title(f"{result['model']} on {result['machine']['cpu']}, {result['threads']} threads", fontsize=9)
        ax.legend()
        fig.tight_layout()
        path = out / f"qwen2vl_{key}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="qwen2-vl-2b", choices=[n for n, s in models.MODELS.items() if s.kind == "qwen2vl"])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--engines", nargs="+", help="only these (vision, TTFT or text engine names)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    chosen = lambda names: [n for n in names if not args.engines or n in args.engines]  # noqa: E731
    started, t0, load = time.strftime("%Y-%m-%d %H:%M:%S %Z"), time.time(), run_all.load_average()
    for engine in set(chosen(TEXT_ENGINES)) | {"ours-onnx-fp32", "ours-onnx-w4", "ours-gguf-q4_0"}:
        models.ENGINE_BUILDS[engine](args.model)  # build (cached) before anything is timed
    common = ["--runs", str(args.runs), "--threads", str(args.threads)]
    result: dict[str, Any] = {
        "started": started, "model": args.model, "threads": args.threads, "runs": args.runs,
        "machine": run_all.machine(), "versions": run_all.versions(), "commit": run_all.commit(),
        "vision": [run_all.run_child("native_vision.py", e, args.model, common) for e in chosen(VISION_ENGINES)],
        "ttft": [run_all.run_child("native_vision.py", e, args.model, common) for e in chosen(TTFT_ENGINES)],
        "text": [run_all.run_child("compare_text.py", e, args.model, common + ["--steps", str(args.steps)])
                 for e in chosen(TEXT_ENGINES)]}
    result["load_average"] = {"start": load, "end": run_all.load_average()}
    result["wall_s"] = round(time.time() - t0, 1)
    (out / "qwen2vl.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    (out / "qwen2vl.md").write_text(table)
    plots = plot(result, out)
    print(table)
    models.log(f"wrote {out / 'qwen2vl.json'}, {out / 'qwen2vl.md'}, {', '.join(p.name for p in plots)}")


if __name__ == "__main__":
    main()
