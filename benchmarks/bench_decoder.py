"""Decoder / vision timing on a MiniCPM-V-class model of real size (random weights).

  python benchmarks/bench_decoder.py [--skip-genai] [--skip-vision] [--threads N]

Text: Qwen2-0.5B dims (hidden 896, 24 layers, 14 heads, 2 KV heads, MLP 4864, vocab 151936).
Vision: SigLIP-400M dims (hidden 1152, 27 layers, 16 heads, MLP 4304) + resampler to 896, 448x448 slices.
Models are built once into ~/.cache/edgevlm-bench (never committed). Writes benchmarks/results/decoder.json:
- decode ms/token at 64 and 1024 tokens of context through OrtBackend.forward (our graph, IO binding);
- per-token Python overhead = (step time - time inside session runs) / step time;
- the same decode timing for onnxruntime-genai's model builder graph (GroupQueryAttention, shared KV),
  interleaved step by step with ours;
- batched vs one-at-a-time slice encoding.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import cpu_info  # noqa: E402
CACHE = Path(os.environ.get("EDGEVLM_BENCH_CACHE", Path.home() / ".cache" / "edgevlm-bench"))
QWEN2_05B = dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                 intermediate_size=4864, vocab_size=151936, max_position_embeddings=32768, rope_theta=1000000.0,
                 rms_norm_eps=1e-6, tie_word_embeddings=True, hidden_act="silu")
MAX_CONTEXT = 2048


def log(*a):
    print(f"[{time.strftime('%H:%M:%S')}]", *a, flush=True)


def build_text_checkpoint() -> Path:
    out = CACHE / "qwen2-0.5b-random"
    if (out / "model.safetensors").exists():
        return out
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(**QWEN2_05B)
    model = Qwen2ForCausalLM(cfg).eval()
    model.save_pretrained(str(out), safe_serialization=True)
    return out


def export_ours(ckpt: Path) -> Path:
    out = CACHE / "ours"
    if (out / "decoder.onnx").exists() and (out / "parts.json").exists():
        return out
    import torch
    from transformers import AutoModelForCausalLM

    from edgevlm.export.onnx.decoder import export_decoder
    from edgevlm.export.onnx.embedding import export_embedding
    from edgevlm.families.common.reference import TextSpec

    lm = AutoModelForCausalLM.from_pretrained(str(ckpt), dtype=torch.float32, attn_implementation="eager").eval()

    class TextOnlyRef(torch.nn.Module):
        """The part of a ReferenceVLM the decoder/embedding exporters use, for a text-only checkpoint."""

        family, image_token_id = "minicpmv", 0

        def __init__(self):
            super().__init__()
            self.language_model = lm
            self.text = TextSpec.from_config("qwen2", lm.config)

        def embed_tokens(self, ids):
            return self.language_model.get_input_embeddings()(ids)

    ref = TextOnlyRef()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    parts = {"decoder": export_decoder(ref, out, max_context=MAX_CONTEXT),
             "embedding": export_embedding(ref, out / "embedding.onnx")}
    log(f"our export: {time.time() - t0:.0f} s")
    (out / "parts.json").write_text(json.dumps({k: vars(v) for k, v in parts.items()}))
    return out


def backend_for(out: Path, threads: int | None):
    from edgevlm.manifest import Manifest, Part
    from edgevlm.runtime.backends.onnxruntime import OrtBackend

    parts = {k: Part(**v) for k, v in json.loads((out / "parts.json").read_text()).items()}
    manifest = Manifest(format="onnx", family="minicpmv", attention="causal", text={}, vision={}, processor={},
                        layout={}, chat_template={}, tokenizer={}, parts=parts)
    return OrtBackend(out, manifest, threads=threads)


class TimedSessions:
    """Accumulates wall time spent inside onnxruntime session calls of a backend."""

    def __init__(self, backend):
        self.seconds = 0.0
        for attr in ("embedding", "decoder"):
            sess = getattr(backend, attr)
            setattr(backend, attr, self._wrap(sess))

    def _wrap(self, sess):
        timer = self

        class Wrapped:
            def __getattr__(self, name):
                return getattr(sess, name)

            def run(self, *a, **k):
                t = time.perf_counter()
                try:
                    return sess.run(*a, **k)
                finally:
                    timer.seconds += time.perf_counter() - t

            def run_with_iobinding(self, *a, **k):
                t = time.perf_counter()
                try:
                    return sess.run_with_iobinding(*a, **k)
                finally:
                    timer.seconds += time.perf_counter() - t

        return Wrapped()


def build_genai(ckpt: Path) -> Path | None:
    out = CACHE / "genai"
    if (out / "model.onnx").exists():
        return out
    cmd = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(ckpt), "-o", str(out), "-p", "fp32",
           "-e", "cpu", "-c", str(CACHE / "genai-cache"), "--extra_options", "exclude_embeds=true"]
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    log(f"genai builder: exit {proc.returncode} in {time.time() - t0:.0f} s")
    if not (out / "model.onnx").exists():
        log(proc.stdout[-2000:], proc.stderr[-2000:])
        return None
    return out


class GenaiStepper:
    """Single-token steps of the builder's graph, its KV bound to one shared [1, kv, max, hd] buffer per layer."""

    def __init__(self, out: Path, threads: int | None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self.sess = ort.InferenceSession(str(out / "model.onnx"), opts, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.sess.get_inputs()]
        kvh, hd = QWEN2_05B["num_key_value_heads"], QWEN2_05B["hidden_size"] // QWEN2_05B["num_attention_heads"]
        rng = np.random.default_rng(0)
        self.bufs = {n: rng.standard_normal((1, kvh, MAX_CONTEXT, hd)).astype(np.float32)
                     for n in self.names if n.startswith("past_key_values")}
        self.binding = self.sess.io_binding()

    def step(self, ctx: int) -> None:
        b, total = self.binding, ctx + 1
        keep = {"inputs_embeds": np.ones((1, 1, QWEN2_05B["hidden_size"]), np.float32),
                "attention_mask": np.ones((1, total), np.int64)}
        if "position_ids" in self.names:
            keep["position_ids"] = np.array([[ctx]], np.int64)
        for k, v in keep.items():
            b.bind_cpu_input(k, v)
        for n, buf in self.bufs.items():
            b.bind_input(n, "cpu", 0, np.float32, list(buf.shape), buf.ctypes.data)
            b.bind_output(n.replace("past_key_values", "present"), "cpu", 0, np.float32, list(buf.shape),
                          buf.ctypes.data)
        b.bind_output("logits")
        self.sess.run_with_iobinding(b)


def bench_decode(ours_dir: Path, genai_dir: Path | None, threads: int | None, steps: int) -> dict:
    """Prefill timings, then single-token decode steps at 64 and 1024 tokens of context, alternating
    ours / builder and 64 / 1024 step by step so that load from other processes hits all four alike.
    Records wall and process-CPU time per step and, for ours, the time spent outside session calls."""
    be = backend_for(ours_dir, threads)
    timer = TimedSessions(be)
    genai = GenaiStepper(genai_dir, threads) if genai_dir else None
    rng = np.random.default_rng(0)
    ours: dict = {}
    for ctx in (64, 1024):
        be.rewind(0)
        t0 = time.perf_counter()
        logits = be.forward(rng.integers(0, QWEN2_05B["vocab_size"], ctx))
        ours[f"prefill_{ctx}_s"] = round(time.perf_counter() - t0, 3)
    tok = int(logits.argmax())
    be.forward(np.array([tok]))  # warm-up steps
    if genai:
        genai.step(64)
    # The cache now holds 1024+ rows. Setting n_past directly reuses rows already written (a step at
    # 64 overwrites row 64; the values do not change the cost of a step).
    wall = {(s, c): [] for s in ("ours", "genai") for c in (64, 1024)}
    cpu = {(s, c): [] for s in ("ours", "genai") for c in (64, 1024)}
    inside = {64: 0.0, 1024: 0.0}
    for _ in range(steps):
        for ctx in (64, 1024):
            be.n_past = ctx
            timer.seconds = 0.0
            t0, c0 = time.perf_counter(), time.process_time()
            tok = int(be.forward(np.array([tok])).argmax())
            wall["ours", ctx].append(time.perf_counter() - t0)
            cpu["ours", ctx].append(time.process_time() - c0)
            inside[ctx] += timer.seconds
            if genai:
                t0, c0 = time.perf_counter(), time.process_time()
                genai.step(ctx)
                wall["genai", ctx].append(time.perf_counter() - t0)
                cpu["genai", ctx].append(time.process_time() - c0)
    result = {"ours": ours, "genai_builder": {}}
    for (side, ctx), values in wall.items():
        if not values:
            continue
        res = result["ours" if side == "ours" else "genai_builder"]
        res[f"decode_ms_ctx{ctx}"] = round(1000 * float(np.median(values)), 2)
        res[f"decode_cpu_ms_ctx{ctx}"] = round(1000 * float(np.median(cpu[side, ctx])), 2)
        if side == "ours":
            total = sum(values)
            res[f"python_overhead_ctx{ctx}"] = round((total - inside[ctx]) / total, 4)
            res[f"python_overhead_ms_ctx{ctx}"] = round(1000 * (total - inside[ctx]) / steps, 3)
    for side in ("ours", "genai_builder"):
        res = result[side]
        if "decode_ms_ctx64" in res:
            res["ratio_1024_over_64"] = round(res["decode_ms_ctx1024"] / res["decode_ms_ctx64"], 3)
            res["ratio_cpu_1024_over_64"] = round(res["decode_cpu_ms_ctx1024"] / res["decode_cpu_ms_ctx64"], 3)
            log(side, {k: v for k, v in res.items() if "decode" in k or "overhead" in k or "ratio" in k})
    if not genai:
        result.pop("genai_builder")
    be.close()
    return result


def bench_vision(threads: int | None, n_slices: int, rounds: int) -> dict:
    import torch

    from edgevlm.export.onnx.vision import export_vision
    from edgevlm.export import vision_info
    from edgevlm.families.minicpmv.reference import MiniCPMV
    from edgevlm.families.minicpmv.tiny import random_config

    out = CACHE / "vision"
    if not (out / "parts.json").exists():
        cfg = random_config(2.6, 1000, {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0})
        cfg.update(hidden_size=896, num_attention_heads=14, num_key_value_heads=2, intermediate_size=64,
                   num_hidden_layers=1)
        cfg["vision_config"].update(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27,
                                    num_attention_heads=16)
        torch.manual_seed(0)
        ref = MiniCPMV(cfg).eval()
        ref.image_token_id = 0
        out.mkdir(parents=True, exist_ok=True)
        part = export_vision(ref, out / "vision.onnx")
        (out / "parts.json").write_text(json.dumps({"vision": vars(part), "info": vars(vision_info(ref, 16))}))
        del ref
    from edgevlm.manifest import Part, VisionInfo
    from edgevlm.runtime.backends.onnxruntime import OrtBackend

    saved = json.loads((out / "parts.json").read_text())
    part, info = Part(**saved["vision"]), VisionInfo(**saved["info"])
    be = OrtBackend.__new__(OrtBackend)  # vision only: build the pieces encode_images needs
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    be.vision = ort.InferenceSession(str(out / "vision.onnx"), opts, providers=["CPUExecutionProvider"])
    be.vision_info, be.vision_derived = info, part.binding.get("derived_inputs", {})
    be.bundle = out
    tgt = np.array([[32, 32]] * n_slices, np.int32)
    pixels = np.random.default_rng(0).standard_normal((n_slices, 3, 14, 1024 * 14)).astype(np.float32)
    inputs = {"pixel_values": pixels, "patch_attention_mask": np.ones((n_slices, 1024), bool), "tgt_sizes": tgt}
    res = {"slices": n_slices, "slice_px": 448, "rounds": rounds}
    # Warm-up at the largest batch: the first run of a shape grows onnxruntime's memory arena (page
    # faults); measured cold, the batched run pays that once (170 s vs 108 s warm, 3 slices, loaded host).
    be.vision_info.max_batch = n_slices
    be.encode_images(inputs)
    times: dict[str, list[float]] = {"sequential": [], "batched": []}
    # CPU seconds of this process (all its threads) as well as wall time: on a shared host the wall
    # time mostly measures other people's jobs, the CPU time measures the work this encoder did.
    cpu: dict[str, list[float]] = {"sequential": [], "batched": []}
    # Alternate the two modes so that load from other processes hits both alike.
    for _ in range(rounds):
        for label, batch in (("sequential", 1), ("batched", n_slices)):
            be.vision_info.max_batch = batch
            t0, c0 = time.perf_counter(), time.process_time()
            feats = be.encode_images(inputs)
            times[label].append(time.perf_counter() - t0)
            cpu[label].append(time.process_time() - c0)
            log(f"vision {label} (batch {batch}): {times[label][-1]:.2f} s wall, {cpu[label][-1]:.2f} s CPU for "
                f"{n_slices} slices, {feats.shape}")
    for label in times:
        res[f"{label}_s"] = round(float(np.median(times[label])), 3)
        res[f"{label}_all_s"] = [round(v, 3) for v in times[label]]
        res[f"{label}_cpu_s"] = round(float(np.median(cpu[label])), 3)
        res[f"{label}_cpu_all_s"] = [round(v, 3) for v in cpu[label]]
    res["speedup_cpu"] = round(res["sequential_cpu_s"] / res["batched_cpu_s"], 3)
    res["speedup"] = round(res["sequential_s"] / res["batched_s"], 3)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--slices", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--skip-genai", action="store_true")
    ap.add_argument("--skip-vision", action="store_true")
    ap.add_argument("--skip-decode", action="store_true", help="vision only (keeps other sections of the JSON)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "decoder.json"))
    args = ap.parse_args()
    import onnxruntime as ort

    result = {"platform": {"machine": platform.machine(), "system": platform.platform(),
                           "python": platform.python_version(), "cpu": cpu_info.cpu()["model"], "cores": os.cpu_count(),
                           "onnxruntime": ort.__version__, "threads": args.threads,
                           # other processes' load: on a shared host it explains wall-time spread
                           "loadavg_start": [round(x, 2) for x in os.getloadavg()]},
              "text_model": {"dims": QWEN2_05B, "dtype": "fp32", "max_context": MAX_CONTEXT}}
    if args.skip_decode and Path(args.out).exists():
        previous = json.loads(Path(args.out).read_text())
        result.update({k: v for k, v in previous.items() if k in ("ours", "genai_builder")})
    ckpt = build_text_checkpoint()
    if not args.skip_decode:
        ours = export_ours(ckpt)
        genai = None if args.skip_genai else build_genai(ckpt)
        result.update(bench_decode(ours, genai, args.threads, args.steps))
    if not args.skip_vision:
        result["vision"] = bench_vision(args.threads, args.slices, args.rounds)
    result["platform"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
