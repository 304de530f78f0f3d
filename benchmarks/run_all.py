"""The whole benchmark suite in one command: build (cached), measure every engine, write JSON + table + plots.

    python benchmarks/run_all.py [--models minicpmv-0.5b gemma3-270m] [--runs 3] [--vision-runs 2]
                                 [--steps 16] [--threads 2] [--out benchmarks/results]

1. machine, versions, commit, load average; the CPU's ISA flags and the kernels onnxruntime and llama.cpp
   choose on it (cpu_info.py); this machine's memory bandwidth (roofline.py);
2. per model: the checkpoint and every bundle/build (models.py, cached under ~/.cache/edgevlm-bench);
3. per engine, in its own process (clean peak RSS, no library sharing a process with another):
   text speed (compare_text.py); for models with a real vision tower, vision (compare_vision.py) and time
   to first token measured end to end (compare_ttft.py); for models with real weights, prompt-lookup
   speculative decoding as its own rows (bench_speculative.py);
4. derived figures (report.py): fraction of the bandwidth roofline, the issue's target ratios;
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
import cpu_info  # noqa: E402
import models  # noqa: E402
import report  # noqa: E402

README = HERE / "README.md"
MARK_START, MARK_END = "<!-- results:start -->", "<!-- results:end -->"


def log(message: str) -> None:
    models.log(message)


# -- environment --------------------------------------------------------------------------------

def machine() -> dict[str, Any]:
    cpu = cpu_info.cpu()["model"]
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
    import compare_ttft
    import compare_vision

    spec = models.spec(name)
    entry: dict[str, Any] = {"name": name, "description": spec.description, "threads": args.threads}
    t0 = time.time()
    engines = ["--engines", *args.engines] if args.engines else []  # build only what will be measured
    if args.engines and not args.skip_vision:
        engines.append("ours-onnx-fp32")  # the vision engines' bundle
        # the TTFT engines' bundles (llama.cpp + mtmd reads the GGUF bundle's text GGUF and mmproj)
        engines += [e if e in models.ENGINE_BUILDS else "ours-gguf-q4_0" for e in ttft_engines(args)]
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
    entry["ttft"] = []
    if spec.kind in compare_ttft.TTFT_KINDS and not args.skip_vision:
        for engine in ttft_engines(args):
            log(f"{name}: TTFT engine {engine}")
            row = run_child("compare_ttft.py", engine, name, ["--runs", str(args.vision_runs),
                                                             "--threads", str(args.threads)])
            row.setdefault("label", compare_ttft.ENGINES[engine][0])
            entry["ttft"].append(row)
            _say_row(row)
    entry["speculative"] = []
    if spec.real_text and not args.skip_speculative:
        log(f"{name}: prompt-lookup speculative decoding (ours-onnx-w4)")
        row = run_child("bench_speculative.py", "ours-onnx-w4", name, ["--threads", str(args.threads)])
        entry["speculative"] = row.get("rows") or [row]
    return entry


def ttft_engines(args: argparse.Namespace) -> list[str]:
    import compare_ttft

    return list(args.ttft_engines or compare_ttft.ENGINES)


def _say_row(row: dict[str, Any]) -> None:
    if "error" in row or "skipped" in row:
        log(f"  -> {row.get('error') or row.get('skipped')}")
    elif "decode_tokens_per_s_ctx128" in row:
        log(f"  -> decode {row['decode_tokens_per_s_ctx128']['median']:.2f} / "
            f"{row['decode_tokens_per_s_ctx1024']['median']:.2f} tok/s, prefill "
            f"{row['prefill_tokens_per_s']['median']:.0f} tok/s, RSS {row['peak_rss_mb']:.0f} MB")
    else:
        log("  -> " + ", ".join(f"{k} {v['median']:.0f} ms" for k, v in row.items()
                                 if k.endswith("_ms") and isinstance(v, dict) and "median" in v))


def finish(suite: dict[str, Any], out_dir: Path) -> None:
    """Derived figures, JSON, markdown (file + README) and plots from the raw rows in ``suite``."""
    import plots

    bw = suite["bandwidth"]["read_gb_s"]
    for model in suite["models"]:
        report.add_roofline(model["text"], bw)
        model["targets"] = report.targets(model["text"], model.get("vision", []), model.get("ttft", []))
    out_dir.mkdir(parents=True, exist_ok=True)
    written = plots.write_plots(suite, out_dir)
    for model in suite["models"]:
        model["plots"] = [str(p.name) for p in written if p.name.startswith(model["name"] + "-")]
    (out_dir / "suite.json").write_text(json.dumps(suite, indent=2) + "\n")
    (out_dir / "suite.md").write_text(report.markdown(suite, images=""))  # next to the plots
    if out_dir.resolve() == (HERE / "results").resolve():
        splice_readme(report.markdown(suite))  # README.md is one level up
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
    ap.add_argument("--ttft-engines", nargs="+", help="TTFT engines to run (default: all of compare_ttft.py)")
    ap.add_argument("--skip-speculative", action="store_true", help="no prompt-lookup rows (bench_speculative.py)")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--merge", action="store_true",
                    help="add/replace the --engines rows of --models in an existing suite.json, then re-derive")
    args = ap.parse_args()
    if args.merge:
        merge(args)
        return
    started = time.time()
    suite: dict[str, Any] = {"started": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                             "machine": machine(), "kernels": cpu_info.machine_kernels(), "versions": versions(),
                             "commit": commit(),
                             "threads": args.threads, "runs": args.runs, "vision_runs": args.vision_runs,
                             "steps": args.steps, "load_average": {"start": load_average()}}
    log(f"machine {suite['machine']['cpu']}, {suite['machine']['cores']} cores ({suite['kernels']['cpu']['isa']}); "
        f"load {suite['load_average']['start']}")
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
