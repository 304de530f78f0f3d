"""Where one decode step of an ONNX decoder spends its time, robust to a loaded machine.

    python benchmarks/profile_decoder.py BUNDLE [BUNDLE ...] [--ctx 128 1024] [--steps 40] [--threads 2]

onnxruntime's profiler times every node of every run; on a shared machine single runs are hit by
preemption, so per node this takes the MEDIAN over ``steps`` runs (not the mean), then sums by op type.
Reports: nodes after the optimizer, median kernel ms per step, the weight matmuls' share
(MatMulNBits / MatMul / MatMulInteger with a constant weight) and the rest ("outside the matmuls"),
the top op types, and the median wall ms of the whole ``run`` (kernels + the executor's own work).
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MATMULS = ("MatMulNBits", "MatMul", "MatMulInteger", "FusedMatMul")


def decoder_feeds(manifest: Any, ctx: int) -> dict[str, np.ndarray]:
    """Inputs of one decode step at context ``ctx`` (random embeddings, open masks, zero caches)."""
    part, text = manifest.parts["decoder"], manifest.text
    feeds = {"inputs_embeds": np.random.default_rng(0).standard_normal((1, 1, text.hidden_size), np.float32),
             "position_ids": np.array([[ctx]], np.int64), part.binding.get("logits_index", "logits_index"):
             np.array([0], np.int64)}
    for name in part.binding["masks"]:
        feeds[name] = np.zeros((1, 1, 1, ctx + 1), np.float32)
    kv = part.binding["kv"]
    for i in range(text.num_layers):
        for key in ("past_key", "past_value"):
            feeds[kv[key] % i] = np.zeros((1, ctx, text.num_kv_heads, text.head_dim), np.float32)
    return feeds


def profile(bundle: Path, ctx: int, steps: int, threads: int, options: dict[str, str] | None = None
            ) -> dict[str, Any]:
    import onnx
    import onnxruntime as ort

    from edgevlm.manifest import read_manifest

    manifest = read_manifest(bundle, verify=False)
    feeds = decoder_feeds(manifest, ctx)
    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        so.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        for key, value in (options or {}).items():
            so.add_session_config_entry(key, value)
        session = ort.InferenceSession(str(bundle / manifest.parts["decoder"].file), so,
                                       providers=["CPUExecutionProvider"])
        for _ in range(3):
            session.run(None, feeds)  # warm-up, unprofiled
        walls = []
        for _ in range(steps):
            t0 = time.perf_counter()
            session.run(None, feeds)
            walls.append(time.perf_counter() - t0)
        nodes = len(onnx.load(str(Path(tmp) / "optimized.onnx"), load_external_data=False).graph.node)
        so.enable_profiling, so.profile_file_prefix = True, str(Path(tmp) / "profile")
        so.optimized_model_filepath = ""
        session = ort.InferenceSession(str(bundle / manifest.parts["decoder"].file), so,
                                       providers=["CPUExecutionProvider"])
        for _ in range(steps + 3):
            session.run(None, feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
    per_node: dict[str, list[float]] = collections.defaultdict(list)
    op_of: dict[str, str] = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_node[e["name"]].append(e["dur"] / 1e3)
            op_of[e["name"]] = e["args"]["op_name"]
    per_op: dict[str, float] = collections.defaultdict(float)
    for name, durs in per_node.items():
        per_op[op_of[name]] += statistics.median(durs[3:] or durs)
    kernel = sum(per_op.values())
    matmul = sum(v for k, v in per_op.items() if k in MATMULS)
    return {"ctx": ctx, "nodes_after_optimizer": nodes, "run_wall_ms": round(statistics.median(walls) * 1e3, 3),
            "kernel_ms": round(kernel, 3), "matmul_ms": round(matmul, 3), "outside_matmul_ms": round(kernel - matmul, 3),
            "top_ops_ms": dict(sorted(((k, round(v, 3)) for k, v in per_op.items()), key=lambda kv: -kv[1])[:10])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundles", nargs="+")
    ap.add_argument("--ctx", nargs="+", type=int, default=[128, 1024])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args()
    out = []
    for bundle in args.bundles:
        for ctx in args.ctx:
            row = {"bundle": bundle, **profile(Path(bundle), ctx, args.steps, args.threads)}
            print(json.dumps(row), flush=True)
            out.append(row)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
