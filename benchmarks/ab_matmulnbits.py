"""A/B of MatMulNBits settings for the w4 decoder: one process, variants alternating step by step.

    python benchmarks/ab_matmulnbits.py BUNDLE_FP32 [--variants b32,b64,b128,b32-sym,head-b128]
                                       [--ctx 128 1024] [--rounds 12] [--threads 2] [--json OUT]

Each variant quantizes the fp32 bundle's decoder with edgevlm's own quantizer calls (quantize/onnx.py:
the body at 4 bits, the output head at 8 bits unless said otherwise) into a cache next to the bundle;
then one onnxruntime session per variant decodes single steps at the given context, the variants taking
turns in blocks of 4 steps (the first step of each block dropped: onnxruntime's threads spin after a
run, which would slow the next session), ``rounds`` blocks each. Reported per variant: median wall ms
and CPU ms per step, bytes of weights read per step, and the ratio to the first variant.
On a machine other jobs load, wall time measures the scheduler: use ``--threads 1`` (the default), where
onnxruntime computes on the calling thread, and read its CPU time (``time.thread_time``): the work a
step costs, whoever else runs. Two-thread wall figures belong on a quiet machine.
A variant name is dash-separated: ``b<N>`` body block size, ``sym``, ``acc<L>`` accuracy level,
``head-b<N>`` head block size, ``head4`` a 4-bit head.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from profile_decoder import decoder_feeds  # noqa: E402


def parse(name: str) -> dict[str, Any]:
    v = {"block": 32, "sym": False, "acc": 4, "head_bits": 8, "head_block": None}
    parts = name.split("-")
    i = 0
    while i < len(parts):
        p = parts[i]
        if p == "head" and i + 1 < len(parts):
            nxt = parts[i + 1]
            if nxt.startswith("b"):
                v["head_block"] = int(nxt[1:])
            i += 2
            continue
        if p == "head4":
            v["head_bits"] = 4
        elif p == "sym":
            v["sym"] = True
        elif p.startswith("acc"):
            v["acc"] = int(p[3:])
        elif p.startswith("b"):
            v["block"] = int(p[1:])
        else:
            raise SystemExit(f"unknown variant part {p!r} in {name!r}")
        i += 1
    return v


def build(src: Path, name: str, cache: Path) -> Path:
    """The fp32 decoder quantized as ``name`` -> cache/<name>/decoder.onnx (made once)."""
    import logging

    import onnx

    from edgevlm.quantize.onnx import _load, _matmul_nbits, _save, output_heads

    logging.getLogger("onnxruntime.quantization").setLevel(logging.WARNING)  # one INFO line per node otherwise

    out = cache / name / "decoder.onnx"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    v = parse(name)
    model = _load(src)
    heads = output_heads(model) if v["head_bits"] == 8 else []
    model = _matmul_nbits(model, 4, v["block"], v["sym"], v["acc"], exclude=heads)
    if heads:
        model = _matmul_nbits(model, 8, v["head_block"] or v["block"], True, v["acc"], include=heads)
    _save(model, out)
    del model
    onnx.checker.check_model(str(out))
    return out


def weight_bytes(path: Path) -> int:
    import roofline

    return roofline.onnx_weight_bytes(path)


def main() -> None:
    import onnxruntime as ort

    from edgevlm.manifest import read_manifest

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle")
    ap.add_argument("--variants", default="b32,b64,b128,b32-sym,head-b128")
    ap.add_argument("--ctx", nargs="+", type=int, default=[128, 1024])
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json")
    args = ap.parse_args()
    bundle = Path(args.bundle)
    manifest = read_manifest(bundle, verify=False)
    src = bundle / manifest.parts["decoder"].file
    cache = bundle.parent / "ab-matmulnbits"
    names = args.variants.split(",")
    paths = {n: build(src, n, cache) for n in names}
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = args.threads, 1
    clock = time.thread_time if args.threads == 1 else time.process_time  # 1 thread: ORT runs on this one
    sessions = {n: ort.InferenceSession(str(p), so, providers=["CPUExecutionProvider"]) for n, p in paths.items()}
    result: dict[str, Any] = {"bundle": str(bundle), "threads": args.threads, "rounds": args.rounds, "ctx": {}}
    for ctx in args.ctx:
        feeds = decoder_feeds(manifest, ctx)
        for s in sessions.values():
            s.run(None, feeds)
        wall: dict[str, list[float]] = {n: [] for n in names}
        cpu: dict[str, list[float]] = {n: [] for n in names}
        for _ in range(args.rounds):
            for n, s in sessions.items():
                for j in range(5):
                    w0, c0 = time.perf_counter(), clock()
                    s.run(None, feeds)
                    if j:
                        wall[n].append((time.perf_counter() - w0) * 1e3)
                        cpu[n].append((clock() - c0) * 1e3)
        base = statistics.median(wall[names[0]]), statistics.median(cpu[names[0]])
        rows = {}
        for n in names:
            w, c = statistics.median(wall[n]), statistics.median(cpu[n])
            rows[n] = {"wall_ms": round(w, 3), "cpu_ms": round(c, 3), "wall_vs_first": round(base[0] / w, 3),
                       "cpu_vs_first": round(base[1] / c, 3)}
            print(f"ctx {ctx} {n:>16}: wall {w:7.2f} ms ({base[0] / w:.3f}x)  CPU {c:7.2f} ms ({base[1] / c:.3f}x)",
                  flush=True)
        result["ctx"][str(ctx)] = rows
    result["mb_per_token"] = {n: round(weight_bytes(p) / 1e6, 1) for n, p in paths.items()}
    print(json.dumps(result["mb_per_token"]))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
