"""Prefill and decode speed of one engine on one benchmark model (run once per engine, in its own process).

    python benchmarks/compare_text.py ENGINE MODEL [--runs 3] [--steps 16] [--threads 2] [--json OUT]

Engines (ENGINES below): our runtime on our ONNX bundles (fp32 / int8 / w4) and on our GGUF bundle
(q4_0 text through edgevlm's llama.cpp backend); llama.cpp itself (llama-cpp-python's ``Llama``) on
the very same GGUF file, and on the published GGUF where one exists; onnxruntime-genai on its model
builder's graph of the same weights (fp32 / int4); transformers' PyTorch eager model as the baseline.

Protocol, identical for every engine (greedy, token ids fed directly so no tokenizer is involved):
  one untimed warm-up (16 tokens + 1 step); each run: forget the cache, prefill 128 random ids (timed: prefill tokens/s), one untimed step,
  then ``steps`` timed decode steps (median ms per step -> tokens/s at context 128); then the cache is
  filled to 1024 once and every run decodes ``steps`` tokens from 1024 (rewinding to 1024 between runs;
  a model with recurrent layers returns there by a snapshot taken at 1024, untimed).
Result: median and min-max over runs of each run's figure, peak RSS of the process, load time.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import models  # noqa: E402
from engine_cli import engine_main  # noqa: E402

CONTEXTS = (128, 1024)


class Engine:
    """prefill(ids) -> next token; step(token) -> next token; rewind(n) keeps the first n cached positions."""

    label = ""
    weights_bytes = 0  # bytes of weights read per decode step (the roofline numerator), 0 if unknown
    kv_bytes_per_token = 0  # KV-cache bytes read per cached position per decode step
    size_bytes = 0  # what is loaded: bundle / model files
    kernel = ""  # which kernels run the weight matmuls on this CPU (cpu_info.py)

    def prefill(self, ids: np.ndarray) -> int:
        raise NotImplementedError

    def step(self, token: int) -> int:
        raise NotImplementedError

    def rewind(self, n: int) -> None:
        raise NotImplementedError

    def mark(self) -> None:
        """Remember this point: recurrent (linear-attention) layers can rewind only to 0 or a marked point."""

    def close(self) -> None:
        pass


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


class OursEngine(Engine):
    """edgevlm.load(bundle).backend: the exact object VLM.generate drives (embedding + decoder, KV in place)."""

    def __init__(self, bundle: Path, threads: int):
        import cpu_info
        import edgevlm
        import roofline

        manifest = json.loads((bundle / "manifest.json").read_text())
        if manifest["format"] == "gguf":
            with cpu_info.BufferLog() as log:
                self.vlm = edgevlm.load(str(bundle), threads=threads)
            self.kernel = f"ggml, weight buffers {'+'.join(log.types) or '?'}: {cpu_info.llamacpp_system_info()}"
        else:
            self.vlm = edgevlm.load(str(bundle), threads=threads)
            self.kernel = cpu_info.onnx_bundle_kernels(manifest, cpu_info.cpu()["flags"])
        self.backend = self.vlm.backend
        self.size_bytes = _dir_bytes(bundle)
        self.weights_bytes, self.kv_bytes_per_token = roofline.bundle_decode_bytes(bundle)

    def prefill(self, ids: np.ndarray) -> int:
        return int(np.argmax(self.backend.forward(ids)))

    def step(self, token: int) -> int:
        return int(np.argmax(self.backend.forward(np.array([token], np.int64))))

    def rewind(self, n: int) -> None:
        self.backend.rewind(n)

    def mark(self) -> None:
        self.backend.snapshot()  # the backend's rewind returns to its last snapshot

    def close(self) -> None:
        self.vlm.close()


class LlamaCppEngine(Engine):
    """llama-cpp-python's high-level ``Llama`` with its defaults (what a user of llama.cpp would run)."""

    def __init__(self, gguf: Path, threads: int, n_ctx: int):
        import llama_cpp

        import cpu_info
        import roofline
        from edgevlm.runtime.backends.llamacpp_amx import open_llama

        with cpu_info.BufferLog() as log:
            self.llm = open_llama(str(gguf), n_ctx=n_ctx, n_batch=512, n_threads=threads,
                                  n_threads_batch=threads, n_gpu_layers=0, verbose=False)
        self.kernel = f"ggml, weight buffers {'+'.join(log.types) or '?'}: {cpu_info.llamacpp_system_info()}"
        self.n_vocab = self.llm.n_vocab()
        self.recurrent = bool(llama_cpp.llama_model_is_recurrent(self.llm.model)
                              or llama_cpp.llama_model_is_hybrid(self.llm.model))
        self._state = None  # (n_tokens, LlamaState) of the last mark, for a recurrent model
        self.size_bytes = gguf.stat().st_size
        self.weights_bytes, self.kv_bytes_per_token = roofline.gguf_decode_bytes(gguf, kv_dtype_bytes=2)

    def _next(self) -> int:
        logits = np.ctypeslib.as_array(self.llm._ctx.get_logits(), shape=(self.n_vocab,))
        return int(np.argmax(logits))

    def prefill(self, ids: np.ndarray) -> int:
        self.llm.eval(ids.tolist())
        return self._next()

    def step(self, token: int) -> int:
        self.llm.eval([token])
        return self._next()

    def rewind(self, n: int) -> None:
        if self.recurrent and 0 < n and self._state is not None and self._state[0] == n:
            self.llm.load_state(self._state[1])  # a recurrent state cannot drop positions: put the copy back
            return
        self.llm.n_tokens = n  # Llama.eval drops cached positions >= n_tokens before decoding

    def mark(self) -> None:
        if self.recurrent:
            self._state = (self.llm.n_tokens, self.llm.save_state())

    def close(self) -> None:
        self.llm.close()


class GenaiEngine(Engine):
    """onnxruntime-genai's Generator (greedy) on its model builder's output; threads set in genai_config."""

    def __init__(self, folder: Path, threads: int, max_length: int):
        import onnxruntime_genai as og

        import roofline

        cfg_path = folder / "genai_config.json"
        cfg = json.loads(cfg_path.read_text())
        options = cfg["model"]["decoder"].setdefault("session_options", {})
        if options.get("intra_op_num_threads") != threads:
            options["intra_op_num_threads"] = threads
            cfg_path.write_text(json.dumps(cfg, indent=4))
        self.og = og
        self.model = og.Model(str(folder))
        import cpu_info

        kernels = cpu_info.onnxruntime_kernels(cpu_info.cpu()["flags"])
        self.kernel = f"onnxruntime-genai: {kernels['matmul_nbits'] if 'int4' in folder.name else kernels['sgemm']}"
        self.size_bytes = _dir_bytes(folder)
        self.weights_bytes = roofline.onnx_weight_bytes(folder, exclude_gather=True)
        self.kv_bytes_per_token = roofline.kv_bytes_from_config(cfg["model"], dtype_bytes=4)
        self.max_length = max_length
        self._new_generator()

    def _new_generator(self) -> None:
        params = self.og.GeneratorParams(self.model)
        params.set_search_options(max_length=self.max_length, do_sample=False)
        self.gen = self.og.Generator(self.model, params)
        self._rewound = False

    def prefill(self, ids: np.ndarray) -> int:
        self.gen.append_tokens(ids.astype(np.int32).reshape(1, -1))
        return self.step(-1)

    def step(self, token: int) -> int:
        if self._rewound:  # after rewind_to the generator holds no logits: feed the token explicitly
            self._rewound = False
            self.gen.append_tokens(np.array([[token]], np.int32))
        # generate_next_token picks the next token from the logits of what was fed, and the next call
        # feeds it: one forward per step, as in genai's own generation loop.
        self.gen.generate_next_token()
        return int(self.gen.get_next_tokens()[0])

    def rewind(self, n: int) -> None:
        if n == 0:
            self._new_generator()
        else:
            self.gen.rewind_to(n)
            self._rewound = True


class TorchEngine(Engine):
    """transformers' causal LM in PyTorch eager fp32 (attn_implementation="eager"), DynamicCache."""

    def __init__(self, ckpt: Path, threads: int):
        import torch
        from transformers import AutoModelForCausalLM

        import roofline

        torch.set_num_threads(threads)
        self.torch = torch
        import cpu_info

        self.kernel = cpu_info.torch_kernel()
        self.model = AutoModelForCausalLM.from_pretrained(str(ckpt), dtype=torch.float32,
                                                          attn_implementation="eager").eval()
        self.size_bytes = _dir_bytes(ckpt)
        params = sum(p.numel() * p.element_size() for n, p in self.model.named_parameters() if "embed_tokens" not in n)
        if self.model.config.tie_word_embeddings:  # the tied table is read whole as lm_head
            params += self.model.get_input_embeddings().weight.numel() * 4
        self.weights_bytes = params
        self.kv_bytes_per_token = roofline.kv_bytes_from_hf(self.model.config, dtype_bytes=4)
        self.cache = None
        self.ids: list[int] = []

    def _run(self, ids: list[int]) -> int:
        from transformers import DynamicCache

        torch = self.torch
        if self.cache is None:
            self.cache = DynamicCache(config=self.model.config)
        with torch.inference_mode():
            out = self.model(input_ids=torch.tensor([ids]), past_key_values=self.cache, use_cache=True,
                             logits_to_keep=1)
        self.ids += ids
        return int(out.logits[0, -1].argmax())

    def prefill(self, ids: np.ndarray) -> int:
        return self._run(ids.tolist())

    def step(self, token: int) -> int:
        return self._run([token])

    def rewind(self, n: int) -> None:
        if n == 0:
            self.cache, self.ids = None, []
            return
        try:
            self.cache.crop(n)
            self.ids = self.ids[:n]
        except Exception:  # sliding-window caches cannot crop: rebuild the prefix (untimed)
            keep = self.ids[:n]
            self.cache, self.ids = None, []
            self._run(keep)


def _ours(engine: str) -> Callable[[str, int], Engine]:
    def make(model: str, threads: int) -> Engine:
        return OursEngine(models.ENGINE_BUILDS[engine](model), threads)
    return make


def _llamacpp(engine: str) -> Callable[[str, int], Engine]:
    def make(model: str, threads: int) -> Engine:
        return LlamaCppEngine(models.ENGINE_BUILDS[engine](model) / "text.gguf", threads, models.spec(model).max_context)
    return make


def _published(model: str, threads: int) -> Engine:
    path = models.published_gguf(model)
    if path is None:
        raise Unsupported("no published GGUF for this model")
    return LlamaCppEngine(path, threads, models.spec(model).max_context)


def _genai(precision: str) -> Callable[[str, int], Engine]:
    def make(model: str, threads: int) -> Engine:
        folder = models.genai_model(model, precision)
        if folder is None:
            why = models.genai_failure(model, precision)
            raise Unsupported("onnxruntime-genai's model builder " + (f"fails on this model: {why}" if why else
                                                                       "is not run for this model"))
        return GenaiEngine(folder, threads, models.spec(model).max_context)
    return make


class Unsupported(Exception):
    """The engine does not apply to this model (recorded as a skipped row, with the reason)."""


# engine name -> (display label, factory). Order = table order.
ENGINES: dict[str, tuple[str, Callable[[str, int], Engine]]] = {
    "ours-onnx-fp32": ("edgevlm ONNX fp32", _ours("ours-onnx-fp32")),
    "ours-onnx-int8": ("edgevlm ONNX int8", _ours("ours-onnx-int8")),
    "ours-onnx-w4": ("edgevlm ONNX w4", _ours("ours-onnx-w4")),
    "ours-onnx-w4-head4": ("edgevlm ONNX w4, 4-bit head (--head-bits 4)", _ours("ours-onnx-w4-head4")),
    "ours-onnx-w4-b64-sym": ("edgevlm ONNX w4 at Q4_0's bytes (--block-size 64 --symmetric)",
                             _ours("ours-onnx-w4-b64-sym")),
    "ours-onnx-w4-portable": ("edgevlm ONNX w4, portable decoder graph (--decoder-graph portable)",
                              _ours("ours-onnx-w4-portable")),
    "ours-gguf-q4_0": ("edgevlm GGUF Q4_0 (llama.cpp backend)", _ours("ours-gguf-q4_0")),
    "llamacpp-q4_0": ("llama.cpp Q4_0 (same GGUF)", _llamacpp("llamacpp-q4_0")),
    "llamacpp-published": ("llama.cpp published Q4_K_M", _published),
    "genai-fp32": ("onnxruntime-genai fp32", _genai("fp32")),
    "genai-int4": ("onnxruntime-genai int4", _genai("int4")),
    "torch-eager": ("PyTorch eager fp32", lambda model, threads: TorchEngine(models.text_checkpoint(model), threads)),
}


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM). Unlike getrusage's ru_maxrss, which survives exec and so
    reports the parent's peak in a child started by run_all.py, VmHWM belongs to this process image only."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    from edgevlm.runtime.results import peak_rss_mb as rusage_peak

    return rusage_peak()


def _summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "n": len(values)}


def _decode(engine: Engine, token: int, steps: int, avoid: frozenset[int] = frozenset()) -> tuple[float, int]:
    times = []
    for _ in range(steps):
        token = 3 if token in avoid else token  # never feed the image placeholder id without features
        t0 = time.perf_counter()
        token = engine.step(token)
        times.append(time.perf_counter() - t0)
    return 1.0 / statistics.median(times), token


def measure(engine: Engine, runs: int, steps: int, vocab_hi: int = 250, seed: int = 0,
            progress: Callable[[str], None] = lambda m: None, avoid: frozenset[int] = frozenset()) -> dict[str, Any]:
    """The protocol of the module doc. Token ids come from [3, vocab_hi): valid for every tokenizer used.
    ``avoid``: ids never fed back (the image placeholder: a greedy pick of it would need image features)."""
    rng = np.random.default_rng(seed)
    prompt = rng.integers(3, vocab_hi, CONTEXTS[-1]).astype(np.int64)
    # An image placeholder id inside the range (PaliGemma's <image> is 7) would need image features.
    prompt[np.isin(prompt, sorted(avoid))] = 3
    prefill, decode = [], {c: [] for c in CONTEXTS}
    token = engine.prefill(prompt[:16])
    engine.step(3 if token in avoid else token)  # warm-up, untimed: first-call graph setup and allocations
    for run in range(runs):
        engine.rewind(0)
        t0 = time.perf_counter()
        token = engine.prefill(prompt[:CONTEXTS[0]])
        prefill.append(CONTEXTS[0] / (time.perf_counter() - t0))
        token = engine.step(3 if token in avoid else token)  # untimed: first-step allocations
        tps, _ = _decode(engine, token, steps, avoid)
        decode[CONTEXTS[0]].append(tps)
        progress(f"run {run + 1}/{runs}: prefill {prefill[-1]:.0f} tok/s, decode@{CONTEXTS[0]} {tps:.2f} tok/s")
    engine.rewind(0)
    token = engine.prefill(prompt)
    engine.mark()
    engine.step(3 if token in avoid else token)
    for run in range(runs):
        engine.rewind(CONTEXTS[-1])
        tps, _ = _decode(engine, int(prompt[-1]), steps, avoid)
        decode[CONTEXTS[-1]].append(tps)
        progress(f"run {run + 1}/{runs}: decode@{CONTEXTS[-1]} {tps:.2f} tok/s")
    return {"prefill_tokens_per_s": _summary(prefill), "prefill_tokens": CONTEXTS[0],
            **{f"decode_tokens_per_s_ctx{c}": _summary(v) for c, v in decode.items()}}


def _image_token_ids(model: str) -> frozenset[int]:
    manifest = models.CACHE / model / "onnx-fp32" / "manifest.json"
    if not manifest.is_file():
        return frozenset()
    return frozenset({int(json.loads(manifest.read_text())["tokenizer"]["image_token_id"])})


def run_engine(name: str, model: str, runs: int = 3, steps: int = 16, threads: int = 2) -> dict[str, Any]:
    label, factory = ENGINES[name]
    say = lambda m: models.log(f"{model} {name}: {m}")  # noqa: E731
    result: dict[str, Any] = {"engine": name, "label": label, "model": model, "threads": threads, "runs": runs,
                              "steps": steps}
    t0 = time.perf_counter()
    try:
        engine = factory(model, threads)
    except Unsupported as exc:
        return {**result, "skipped": str(exc)}
    result["load_s"] = round(time.perf_counter() - t0, 2)
    result["size_mb"] = round(engine.size_bytes / 1e6, 1)
    result["weights_read_mb_per_token"] = round(engine.weights_bytes / 1e6, 1)
    result["kv_bytes_per_position"] = engine.kv_bytes_per_token
    result["kernel"] = engine.kernel
    result.update(measure(engine, runs, steps, progress=say, avoid=_image_token_ids(model)))
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    engine.close()
    return result


def main() -> None:
    engine_main(__doc__, ENGINES, run_engine, runs=3, steps=16)


if __name__ == "__main__":
    main()
