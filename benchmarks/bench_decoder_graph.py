"""Fused vs portable ONNX decoder graph, the same weights and quantization, alternating in blocks of steps.

    python benchmarks/bench_decoder_graph.py [--models gemma3-270m minicpmv-0.5b] [--recipe w4] [--threads 2]

Both bundles come from benchmarks/models.py (``edgevlm export --decoder-graph fused|portable``, then the
same ``edgevlm quantize``). For each model and context (128, 1024) the two backends decode alternately,
in blocks of 8 steps, so load from other processes hits both alike; medians of ``--steps`` single-token steps. Also reports
each graph's node count after onnxruntime's optimizer and where a step's kernel time goes (onnxruntime's
profiler, one extra session per graph). Writes benchmarks/results/decoder_graph.json.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import models  # noqa: E402  (benchmarks/models.py)


def _backend(bundle: Path, threads: int):
    from edgevlm.manifest import read_manifest
    from edgevlm.runtime.backends.onnxruntime import OrtBackend

    return OrtBackend(bundle, read_manifest(bundle), device="cpu", threads=threads)


def _fill(backend, n: int, seed: int = 0) -> None:
    backend.rewind(0)
    ids = np.random.default_rng(seed).integers(3, 250, n)  # valid ids for every tokenizer used
    ids[ids == backend.image_token_id] = 3  # an image placeholder would need image features
    for start in range(0, n, 256):
        backend.forward(ids[start:start + 256])


def interleaved_decode(bundles: dict[str, Path], threads: int, ctx: int, steps: int) -> dict[str, dict[str, float]]:
    """Median / min / max ms per decode step at context ``ctx`` for each bundle, steps alternating."""
    backends = {name: _backend(path, threads) for name, path in bundles.items()}
    times: dict[str, list[float]] = {name: [] for name in backends}
    for backend in backends.values():
        _fill(backend, ctx)
        backend.forward(np.array([5]))  # warm-up at this shape
    block = 8
    for _ in range(max(1, steps // block)):
        for name, backend in backends.items():
            # Alternate in blocks, and drop each block's first step: onnxruntime's worker threads spin
            # for a while after a run, which would slow the other session's next step.
            for j in range(block + 1):
                backend.rewind(ctx)
                t0 = time.perf_counter()
                backend.forward(np.array([5]))
                if j:
                    times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: {"median": round(float(np.median(t)), 2), "min": round(float(np.min(t)), 2),
                   "max": round(float(np.max(t)), 2)} for name, t in times.items()}


def graph_profile(bundle: Path, threads: int, ctx: int = 128) -> dict[str, object]:
    """Node count after onnxruntime's optimizer and kernel ms per op type for one decode step."""
    import onnx
    import onnxruntime as ort

    from edgevlm.manifest import read_manifest

    manifest = read_manifest(bundle)
    part, text = manifest.parts["decoder"], manifest.text
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(bundle / part.file), options, providers=["CPUExecutionProvider"])
        feeds = {"inputs_embeds": np.random.default_rng(0).standard_normal((1, 1, text.hidden_size), np.float32),
                 "position_ids": np.array([[ctx]], np.int64), "logits_index": np.array([0], np.int64)}
        for name in part.binding["masks"]:
            feeds[name] = np.zeros((1, 1, 1, ctx + 1), np.float32)
        for i in range(text.num_layers):
            for kind in ("key", "value"):
                feeds[f"past_{kind}.{i}"] = np.zeros((1, ctx, text.num_kv_heads, text.head_dim), np.float32)
        runs = 10
        for _ in range(runs):
            session.run(None, feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
        nodes = len(onnx.load(str(Path(tmp) / "optimized.onnx"), load_external_data=False).graph.node)
    per_op: dict[str, float] = collections.defaultdict(float)
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            per_op[event["args"]["op_name"]] += event["dur"] / 1e3 / runs
    top = dict(sorted(((k, round(v, 2)) for k, v in per_op.items()), key=lambda kv: -kv[1])[:8])
    return {"nodes_after_optimizer": nodes, "kernel_ms_per_step": round(sum(per_op.values()), 2),
            "matmul_ms_per_step": round(per_op.get("MatMulNBits", 0) + per_op.get("MatMul", 0)
                                        + per_op.get("MatMulInteger", 0), 2), "top_ops_ms": top}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=["gemma3-270m", "minicpmv-0.5b"])
    ap.add_argument("--recipe", default="w4")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "decoder_graph.json"))
    args = ap.parse_args()
    result = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "load_avg_start": os.getloadavg()[0]},
              "recipe": args.recipe, "threads": args.threads, "steps": args.steps, "models": {}}
    for name in args.models:
        bundles = {graph: models.onnx_bundle(name, args.recipe, graph) for graph in ("fused", "portable")}
        row: dict[str, object] = {"profile": {g: graph_profile(p, args.threads) for g, p in bundles.items()}}
        for ctx in (128, 1024):
            ms = interleaved_decode(bundles, args.threads, ctx, args.steps)
            row[f"ctx{ctx}_ms"] = ms
            row[f"ctx{ctx}_speedup"] = round(ms["portable"]["median"] / ms["fused"]["median"], 3)
            print(f"{name} {args.recipe} ctx {ctx}: fused {ms['fused']['median']} ms, portable "
                  f"{ms['portable']['median']} ms per step -> {row[f'ctx{ctx}_speedup']}x", flush=True)
        result["models"][name] = row
    result["machine"]["load_avg_end"] = os.getloadavg()[0]
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
