"""The whole benchmark suite in one command: build (cached), measure every engine, write JSON + table + plots.

    python benchmarks/run_all.py [--models minicpmv-0.5b gemma3-270m] [--runs 3] [--vision-runs 2]
                                 [--steps 16] [--threads 2] [--out benchmarks/results]

1. machine, versions, commit, load average; this machine's memory bandwidth (roofline.py);
2. per model: the checkpoint and every bundle/build (models.py, cached under ~/.cache/edgevlm-bench);
3. per engine, in its own process (clean peak RSS, no library sharing a process with another):
   text speed (compare_text.py) and, for models with a real vision tower, vision (compare_vision.py);
4. derived figures: fraction of the bandwidth roofline, TTFT breakdown, the issue's target ratios;
5. writes results/suite.json, results/suite.md (also spliced into benchmarks/README.md), results/*.png.
An engine that fails or does not apply becomes a row with the reason; the suite goes on.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
import models  # noqa: E402
import roofline  # noqa: E402

README = HERE / "README.md"
MARK_START, MARK_END = "<!-- results:start -->", "<!-- results:end -->"
TEXT_PROMPT_TOKENS = 40  # chat template + a one-line question around the image placeholders


def log(message: str) -> None:
    models.log(message)


# -- environment --------------------------------------------------------------------------------

def machine() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = 0
    try:
        mem = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                       if line.startswith("MemTotal"))) // 1024
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_mb": mem, "platform": platform.platform(),
            "python": platform.python_version()}


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("edgevlm", "numpy", "onnxruntime", "onnxruntime-genai", "llama_cpp_python", "torch",
                 "transformers", "onnx", "matplotlib"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out


def commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return proc.stdout.strip()

    return {"sha": git("rev-parse", "HEAD"), "dirty_files": len(git("status", "--porcelain").splitlines())}


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def bandwidth(threads: int) -> dict[str, Any]:
    """roofline.measure_bandwidth in a child process: its 1 GiB of arrays must not raise the peak RSS
    that engine processes started later inherit, nor stay resident while they run."""
    code = f"import json, roofline; print(json.dumps(roofline.measure_bandwidth(threads={threads})))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=HERE, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


# -- running one engine ---------------------------------------------------------------------------

def run_child(script: str, engine: str, model: str, extra: list[str], timeout: int = 1200) -> dict[str, Any]:
    """Run compare_*.py for one engine in a fresh process; the JSON it writes, or an error row."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        cmd = [sys.executable, str(HERE / script), engine, model, "--json", str(out), *extra]
        t0, load = time.time(), load_average()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"engine": engine, "model": model, "error": f"timed out after {timeout} s"}
        for line in proc.stdout.splitlines():
            if line.startswith("[") and "]" in line[:12]:  # progress lines of the child
                print("   ", line, flush=True)
        if proc.returncode != 0 or not out.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            return {"engine": engine, "model": model, "error": f"exit {proc.returncode}: {' | '.join(tail)}"}
        result = json.loads(out.read_text())
        result["wall_s"] = round(time.time() - t0, 1)
        result["load_1min_at_start"] = load  # other jobs on the machine distort figures: keep the evidence
        return result


# -- derived figures ------------------------------------------------------------------------------

def add_roofline(rows: list[dict[str, Any]], bandwidth: float) -> None:
    for r in rows:
        if "decode_tokens_per_s_ctx128" not in r or not r.get("weights_read_mb_per_token"):
            continue
        w, kv = r["weights_read_mb_per_token"] * 1e6, r["kv_bytes_per_position"]
        r["roofline"] = {}
        for ctx in (128, 1024):
            ceiling = roofline.ceiling_tokens_per_s(bandwidth, w, kv, ctx)
            r["roofline"][f"ceiling_ctx{ctx}"] = round(ceiling, 2)
            r["roofline"][f"ctx{ctx}"] = round(r[f"decode_tokens_per_s_ctx{ctx}"]["median"] / ceiling, 3)


def ttft_rows(text: list[dict[str, Any]], vision: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Time to first token for one image, composed from measured stages of the same engine pairing:
    preprocessing + vision encoding (compare_vision) + prefill of the image prompt at the engine's
    measured prefill rate (compare_text, 128-token prefill)."""
    by_text = {r["engine"]: r for r in text if "prefill_tokens_per_s" in r}
    by_vision = {r["engine"]: r for r in vision if "chunks" in r}
    ours_pre = by_vision.get("ours-onnx-fp32", {}).get("preprocessing_ms", {}).get("median", 0.0)
    pairs = (("edgevlm ONNX fp32", "ours-onnx-fp32", "ours-onnx-fp32", "batched", True),
             ("edgevlm ONNX w4 (vision w4)", "ours-onnx-w4", "ours-onnx-w4", "batched", True),
             ("edgevlm ONNX int8 (vision int8)", "ours-onnx-int8", "ours-onnx-int8", "batched", True),
             ("edgevlm GGUF Q4_0 (vision ONNX fp32)", "ours-gguf-q4_0", "ours-onnx-fp32", "batched", True),
             ("llama.cpp Q4_0 + mtmd", "llamacpp-q4_0", "mtmd", "sequential", False),
             ("PyTorch eager fp32", "torch-eager", "torch-eager", "batched", True))
    rows = []
    for label, t_engine, v_engine, mode, our_preprocessing in pairs:
        t, v = by_text.get(t_engine), by_vision.get(v_engine)
        if not t or not v or f"{mode}_ms" not in v:
            continue
        tokens = v.get("image_tokens", v["chunks"] * 64) + TEXT_PROMPT_TOKENS  # MiniCPM-V: 64 per chunk
        prefill = 1e3 * tokens / t["prefill_tokens_per_s"]["median"]
        pre = ours_pre if our_preprocessing else 0.0  # mtmd's preprocessing is inside its vision figure
        vis = v[f"{mode}_ms"]["median"]
        rows.append({"label": label, "text_engine": t_engine, "vision_engine": v_engine, "prompt_tokens": tokens,
                     "preprocessing_ms": round(pre, 1), "vision_ms": round(vis, 1), "prefill_ms": round(prefill, 1),
                     "ttft_ms": round(pre + vis + prefill, 1)})
    return rows


def targets(text: list[dict[str, Any]], vision: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_text = {r["engine"]: r for r in text if "decode_tokens_per_s_ctx128" in r}
    by_vision = {r["engine"]: r for r in vision if "chunks" in r}
    out = []
    q4 = by_text.get("llamacpp-q4_0")
    for engine, what in (("ours-onnx-w4", "w4 ONNX"), ("ours-onnx-w4-head4", "w4 ONNX with a 4-bit head"),
                         ("ours-onnx-w4-b64-sym", "w4 ONNX at Q4_0's bytes")):
        w4 = by_text.get(engine)
        if not (w4 and q4):
            continue
        for ctx in (128, 1024):
            key = f"decode_tokens_per_s_ctx{ctx}"
            ratio = w4[key]["median"] / q4[key]["median"]
            out.append({"target": f"decode {what} / llama.cpp Q4_0, context {ctx}", "goal": 1.0,
                        "ratio": round(ratio, 3), "met": ratio >= 1.0})
    ours, torch = by_vision.get("ours-onnx-fp32"), by_vision.get("torch-eager")
    if ours and torch and "batched_ms" in ours:
        for mode in ("batched", "sequential"):
            if f"{mode}_ms" in torch and f"{mode}_ms" in ours:
                ratio = torch[f"{mode}_ms"]["median"] / ours[f"{mode}_ms"]["median"]
                out.append({"target": f"vision speed-up over PyTorch eager fp32 ({mode})", "goal": 1.5,
                            "ratio": round(ratio, 3), "met": ratio >= 1.5})
    for engine in ("ours-onnx-fp32", "ours-onnx-w4", "ours-onnx-w4-head4", "ours-gguf-q4_0"):
        r = by_text.get(engine)
        if r and "roofline" in r:
            for ctx in (128, 1024):
                frac = r["roofline"][f"ctx{ctx}"]
                out.append({"target": f"{r['label']} decode / bandwidth roofline, context {ctx}", "goal": 0.6,
                            "ratio": frac, "met": frac >= 0.6})
    for t in out:
        if not t["met"]:
            short = 100 * (1 - t["ratio"] / t["goal"])
            t["missed_by"] = f"{short:.0f}% short of the goal" if short >= 1 else f"{short:.1f}% short of the goal"
    return out


# -- markdown -------------------------------------------------------------------------------------

def _mm(stats: dict[str, float], digits: int = 1) -> str:
    return f"{stats['median']:.{digits}f} ({stats['min']:.{digits}f}–{stats['max']:.{digits}f})"


def markdown(suite: dict[str, Any], images: str = "results/") -> str:
    """The results as markdown; ``images`` is the plots' directory relative to where the text goes."""
    m, bw = suite["machine"], suite["bandwidth"]
    lines = [f"Run {suite['started']} on {m['cpu']} ({m['cores']} cores, {m['memory_mb'] // 1024} GiB), "
             f"{suite['threads']} threads for every engine; commit `{suite['commit']['sha'][:10]}`"
             f"{' + uncommitted changes' if suite['commit']['dirty_files'] else ''}. "
             f"1-minute load average {suite['load_average']['start']} at start, {suite['load_average']['end']} at end"
             f"{' — **measured under load** (other jobs shared the cores)' if suite['under_load'] else ''}. "
             f"Suite wall time {suite['wall_s'] / 60:.1f} min"
             f"{'' if suite.get('complete', True) else ' (partial: the run was still going)'}.",
             "",
             f"Memory bandwidth: **{bw['read_gb_s']} GB/s** read (min–max {bw['read_gb_s_min_max'][0]}–"
             f"{bw['read_gb_s_min_max'][1]}), {bw['copy_gb_s']} GB/s copy; {bw['method']}.",
             "Figures are medians over runs, with min–max in parentheses."]
    for m_ in suite.get("merged", []):
        lines.append(f"Rows re-measured and merged at {m_['at']} (load {m_['load_average']}): "
                     f"{', '.join(m_['engines'] or [])}.")
    for model in suite["models"]:
        lines += ["", f"### {model['name']}", "", model["description"], ""]
        lines += ["| engine | size MB | prefill tok/s (128) | decode tok/s @128 | decode tok/s @1024 | "
                  "MB read/token | roofline @128 | roofline @1024 | peak RSS MB | load avg |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in model["text"]:
            if "decode_tokens_per_s_ctx128" not in r:
                lines.append(f"| {r.get('label', r['engine'])} | – | – | – | – | – | – | – | – | "
                             f"{r.get('skipped') or r.get('error', '')[:120]} |")
                continue
            roof = r.get("roofline", {})
            pct = lambda k: f"{100 * roof[k]:.0f}%" if k in roof else "–"  # noqa: E731
            lines.append(f"| {r['label']} | {r['size_mb']:.0f} | {_mm(r['prefill_tokens_per_s'], 0)} | "
                         f"{_mm(r['decode_tokens_per_s_ctx128'])} | {_mm(r['decode_tokens_per_s_ctx1024'])} | "
                         f"{r['weights_read_mb_per_token']:.4g} | {pct('ctx128')} | {pct('ctx1024')} | "
                         f"{r['peak_rss_mb']:.0f} | {r.get('load_1min_at_start', '–')} |")
        if model.get("vision"):
            lines += ["", f"Vision encoding of one {model['image_desc']}, ms:", "",
                      "| engine | preprocessing | sequential chunks | batched chunks | peak RSS MB | load avg |",
                      "|---|---:|---:|---:|---:|---:|"]
            for r in model["vision"]:
                if "chunks" not in r:
                    lines.append(f"| {r.get('label', r['engine'])} | {r.get('skipped') or r.get('error', '')[:120]} "
                                 "| | | | |")
                    continue
                cell = lambda k: _mm(r[k], 0) if k in r else "–"  # noqa: E731
                lines.append(f"| {r['label']} | {cell('preprocessing_ms')} | {cell('sequential_ms')} | "
                             f"{cell('batched_ms')} | {r['peak_rss_mb']:.0f} | {r.get('load_1min_at_start', '–')} |")
        if model.get("ttft"):
            lines += ["", "Time to first token (composed from the measured stages; prompt = image tokens + "
                      f"{TEXT_PROMPT_TOKENS} text tokens), ms:", "",
                      "| pipeline | preprocessing | vision | prefill | TTFT |", "|---|---:|---:|---:|---:|"]
            for r in model["ttft"]:
                lines.append(f"| {r['label']} | {r['preprocessing_ms']:.0f} | {r['vision_ms']:.0f} | "
                             f"{r['prefill_ms']:.0f} ({r['prompt_tokens']} tokens) | {r['ttft_ms']:.0f} |")
        if model.get("targets"):
            lines += ["", "Targets (issue 9):", "", "| target | goal | measured ratio | met |", "|---|---:|---:|---|"]
            for t in model["targets"]:
                lines.append(f"| {t['target']} | ≥ {t['goal']:g} | {t['ratio']:.2f} | "
                             f"{'yes' if t['met'] else 'no: ' + t['missed_by']} |")
        for png in model.get("plots", []):
            lines += ["", f"![{Path(png).stem}]({images}{Path(png).name})"]
    return "\n".join(lines) + "\n"


def splice_readme(table: str) -> None:
    text = README.read_text() if README.is_file() else f"# Benchmarks\n\n{MARK_START}\n{MARK_END}\n"
    if MARK_START not in text:
        text += f"\n{MARK_START}\n{MARK_END}\n"
    head, rest = text.split(MARK_START, 1)
    _, tail = rest.split(MARK_END, 1)
    README.write_text(f"{head}{MARK_START}\n{table}{MARK_END}{tail}")


# -- main -----------------------------------------------------------------------------------------

def run_model(name: str, args: argparse.Namespace) -> dict[str, Any]:
    import compare_text
    import compare_vision

    spec = models.spec(name)
    entry: dict[str, Any] = {"name": name, "description": spec.description, "threads": args.threads}
    t0 = time.time()
    engines = ["--engines", *args.engines] if args.engines else []  # build only what will be measured
    if args.engines and not args.skip_vision:
        engines.append("ours-onnx-fp32")  # the vision engines' bundle
    proc = subprocess.run([sys.executable, str(HERE / "models.py"), name, *engines], capture_output=True, text=True)
    entry["build_s"] = round(time.time() - t0, 1)
    if proc.returncode != 0:  # engines whose build failed will report their own error rows
        log(f"{name}: build step failed: {proc.stderr.strip().splitlines()[-1:]}")
    log(f"{name}: builds ready ({entry['build_s']} s)")
    text_args = ["--runs", str(args.runs), "--steps", str(args.steps), "--threads", str(args.threads)]
    entry["text"] = []
    for engine in args.engines or compare_text.ENGINES:
        if engine not in compare_text.ENGINES:
            continue
        log(f"{name}: text engine {engine}")
        row = run_child("compare_text.py", engine, name, text_args)
        row.setdefault("label", compare_text.ENGINES[engine][0])
        entry["text"].append(row)
        _say_row(row)
    entry["vision"] = []
    if spec.kind in compare_vision.IMAGE_DESC and not args.skip_vision:
        entry["image_desc"], entry["image_short"] = compare_vision.IMAGE_DESC[spec.kind]
        vision_args = ["--runs", str(args.vision_runs), "--threads", str(args.threads)]
        for engine in args.vision_engines or compare_vision.ENGINES:
            log(f"{name}: vision engine {engine}")
            row = run_child("compare_vision.py", engine, name, vision_args)
            row.setdefault("label", compare_vision.ENGINES[engine][0])
            entry["vision"].append(row)
            _say_row(row)
    return entry


def _say_row(row: dict[str, Any]) -> None:
    if "error" in row or "skipped" in row:
        log(f"  -> {row.get('error') or row.get('skipped')}")
    elif "decode_tokens_per_s_ctx128" in row:
        log(f"  -> decode {row['decode_tokens_per_s_ctx128']['median']:.2f} / "
            f"{row['decode_tokens_per_s_ctx1024']['median']:.2f} tok/s, prefill "
            f"{row['prefill_tokens_per_s']['median']:.0f} tok/s, RSS {row['peak_rss_mb']:.0f} MB")
    else:
        log("  -> " + ", ".join(f"{k} {v['median']:.0f} ms" for k, v in row.items() if k.endswith("_ms")))


def finish(suite: dict[str, Any], out_dir: Path) -> None:
    """Derived figures, JSON, markdown (file + README) and plots from the raw rows in ``suite``."""
    import plots

    bw = suite["bandwidth"]["read_gb_s"]
    for model in suite["models"]:
        add_roofline(model["text"], bw)
        model["ttft"] = ttft_rows(model["text"], model.get("vision", []))
        model["targets"] = targets(model["text"], model.get("vision", []))
    out_dir.mkdir(parents=True, exist_ok=True)
    written = plots.write_plots(suite, out_dir)
    for model in suite["models"]:
        model["plots"] = [str(p.name) for p in written if p.name.startswith(model["name"] + "-")]
    (out_dir / "suite.json").write_text(json.dumps(suite, indent=2) + "\n")
    (out_dir / "suite.md").write_text(markdown(suite, images=""))  # next to the plots
    if out_dir.resolve() == (HERE / "results").resolve():
        splice_readme(markdown(suite))  # README.md is one level up
    log(f"wrote {out_dir / 'suite.json'}, suite.md, {len(written)} plots")


def merge(args: argparse.Namespace) -> None:
    """Re-measure some text engines (e.g. a new one) into an existing run; rows keep the engine order."""
    import compare_text

    out = Path(args.out)
    suite = json.loads((out / "suite.json").read_text())
    text_args = ["--runs", str(args.runs), "--steps", str(args.steps), "--threads", str(args.threads)]
    order = list(compare_text.ENGINES)
    for model in suite["models"]:
        if model["name"] not in args.models:
            continue
        for engine in args.engines or []:
            log(f"{model['name']}: text engine {engine} (merge)")
            row = run_child("compare_text.py", engine, model["name"], text_args)
            row.setdefault("label", compare_text.ENGINES[engine][0])
            _say_row(row)
            rows = [r for r in model["text"] if r["engine"] != engine] + [row]
            model["text"] = sorted(rows, key=lambda r: order.index(r["engine"]) if r["engine"] in order else 99)
    if args.engines:  # without engines a merge only re-derives tables, targets and plots
        suite.setdefault("merged", []).append({"at": dt.datetime.now(dt.timezone.utc).strftime("%H:%M UTC"),
                                               "engines": args.engines, "load_average": load_average()})
    finish(suite, out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=[n for n, s in models.MODELS.items() if s.default])
    ap.add_argument("--engines", nargs="+", help="text engines to run (default: all)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--vision-runs", type=int, default=2)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-vision", action="store_true")
    ap.add_argument("--vision-engines", nargs="+", help="vision engines to run (default: all of compare_vision.py)")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--merge", action="store_true",
                    help="add/replace the --engines rows of --models in an existing suite.json, then re-derive")
    args = ap.parse_args()
    if args.merge:
        merge(args)
        return
    started = time.time()
    suite: dict[str, Any] = {"started": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                             "machine": machine(), "versions": versions(), "commit": commit(),
                             "threads": args.threads, "runs": args.runs, "vision_runs": args.vision_runs,
                             "steps": args.steps, "load_average": {"start": load_average()}}
    log(f"machine {suite['machine']['cpu']}, {suite['machine']['cores']} cores; load {suite['load_average']['start']}")
    suite["bandwidth"] = bandwidth(args.threads)
    log(f"memory bandwidth: {suite['bandwidth']['read_gb_s']} GB/s read, {suite['bandwidth']['copy_gb_s']} GB/s copy")
    suite["models"] = []
    for i, name in enumerate(args.models):
        suite["models"].append(run_model(name, args))
        # Results are written after every model, so an interrupted suite still leaves its finished part.
        suite["complete"] = i == len(args.models) - 1
        suite["load_average"]["end"] = load_average()
        suite["under_load"] = max(suite["load_average"].values()) > 2.5
        suite["wall_s"] = round(time.time() - started, 1)
        finish(suite, Path(args.out))
    log(f"suite done in {suite['wall_s'] / 60:.1f} min")


if __name__ == "__main__":
    main()
