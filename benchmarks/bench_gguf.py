"""GGUF bundles: prefill and decode tokens/s through our runtime vs llama-cpp-python on the same file.

  python benchmarks/bench_gguf.py [--models gemma3-270m] [--quants f16,q4_0] [--threads 2]
                                  [--prompt-words 120] [--decode 64] [--repeats 3]

For each bundle (built and cached by benchmarks/models.py):
- ours:    ``edgevlm.load(bundle).generate(prompt, temperature=0)``: the whole runtime (tokenizer, prompt
           layout, LlamaCppBackend, sampler, streaming detokenizer); figures from GenerationStats;
- backend: the same token ids through ``LlamaCppBackend.forward`` + argmax only (no runtime layer);
- direct:  ``llama_cpp.Llama`` on the bundle's text.gguf with the same context, batch, threads, KV type
           and attention settings: ``eval(prompt ids)``, then ``eval([argmax])`` per token.
All three decode the same greedy tokens (checked) for as many tokens as our run produced.
Overhead = 1 - ours / direct (tokens/s); medians of ``--repeats`` runs, runs interleaved so machine
noise (2 shared cores) hits all three alike. Because tokens/s on a shared machine varies by +-20%
between runs, each run also clocks the time spent inside ``llama_decode``: the time per token
outside it is each layer's own cost, and ours minus direct's is our overhead, measured within one
run. Writes benchmarks/results/gguf.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

SENTENCE = ("The old lighthouse keeper walked along the rocky shore every morning, counting the boats that "
            "returned from the night's fishing and writing their names in a worn leather book. ")


def log(*parts) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *parts, flush=True)


class DecodeClock:
    """Wraps llama_cpp.llama_decode (used by our backend and by Llama alike) to add up time spent inside it.

    Time per token outside llama_decode is each layer's own cost; unlike tokens/s it is measured within
    one run, so it is robust to other load on the machine.
    """

    def __init__(self):
        import llama_cpp
        import llama_cpp.llama_cpp as bindings

        self.inner = bindings.llama_decode
        self.seconds = 0.0
        # Our backend calls llama_cpp.llama_decode; Llama (via _internals) calls llama_cpp.llama_cpp.llama_decode.
        llama_cpp.llama_decode = bindings.llama_decode = self

    def __call__(self, ctx, batch):
        t0 = time.perf_counter()
        try:
            return self.inner(ctx, batch)
        finally:
            self.seconds += time.perf_counter() - t0

    def take(self) -> float:
        value, self.seconds = self.seconds, 0.0
        return value


CLOCK: DecodeClock | None = None


def _outside_ms(total_s: float, n: int) -> float:
    return 1e3 * (total_s - CLOCK.take()) / max(n, 1)


def run_ours(vlm, prompt: str, decode: int):
    CLOCK.take()
    result = vlm.generate(prompt, max_new_tokens=decode, temperature=0.0)
    s = result.stats
    # Time outside llama_decode over prefill + decode: tokenizer, prompt layout, sampler, detokenizer,
    # stats and our backend's Python (per forward: the prompt counts as one).
    outside = 1e3 * (s.prefill_ms / 1e3 + s.decode_ms / 1e3 - CLOCK.take()) / max(s.decode_tokens + 1, 1)
    return {"prefill_tps": s.prefill_tokens_per_s, "decode_tps": s.decode_tokens_per_s,
            "prompt_tokens": s.prompt_tokens, "decode_tokens": s.decode_tokens,
            "outside_llama_ms_per_token": outside}, result.token_ids


def run_backend(backend, ids: np.ndarray, n: int) -> tuple[dict, list[int]]:
    backend.rewind(0)
    CLOCK.take()
    t0 = time.perf_counter()
    logits = backend.forward(ids)
    t1 = time.perf_counter()
    tokens = []
    for _ in range(n):
        tokens.append(int(np.argmax(logits)))
        logits = backend.forward(np.array([tokens[-1]]))
    t2 = time.perf_counter()
    return {"prefill_tps": len(ids) / (t1 - t0), "decode_tps": n / (t2 - t1),
            "outside_llama_ms_per_token": _outside_ms(t2 - t0, n + 1)}, tokens


def run_direct(llm, ids: list[int], n: int) -> tuple[dict, list[int]]:
    import llama_cpp

    n_vocab = llm.n_vocab()
    llm.reset()
    CLOCK.take()
    t0 = time.perf_counter()
    llm.eval(ids)
    t1 = time.perf_counter()
    tokens = []
    for _ in range(n):
        # Read the last position's logits from the context, as Llama's own sampler does (cheapest path).
        tokens.append(int(np.argmax(np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1),
                                                          shape=(n_vocab,)))))
        llm.eval([tokens[-1]])
    t2 = time.perf_counter()
    return {"prefill_tps": len(ids) / (t1 - t0), "decode_tps": n / (t2 - t1),
            "outside_llama_ms_per_token": _outside_ms(t2 - t0, n + 1)}, tokens


def bench_bundle(bundle: Path, threads: int, prompt_words: int, decode: int, repeats: int) -> dict:
    import llama_cpp

    import edgevlm.runtime as runtime
    from edgevlm.runtime.backends.llamacpp_amx import open_llama

    words = SENTENCE.split()
    prompt = " ".join((words * (prompt_words // len(words) + 1))[:prompt_words])
    vlm = runtime.load(bundle, threads=threads)
    backend = vlm.backend
    # A placeholder id past the lm_head (Gemma 3 270M's <image_soft_token> = 262144) can never be sampled
    # anyway; until the runtime filters such ids itself, drop them here so suppression cannot index past it.
    vlm.suppress_ids = vlm.suppress_ids[vlm.suppress_ids < backend.vocab]
    # The exact ids our runtime feeds (chat template included), so all three prefill the same tokens.
    chat = vlm.chat()
    chat.send(prompt, max_new_tokens=1, temperature=0.0)
    ids = chat.fed[0][0]  # the first forward: the whole prompt
    text_part = vlm.manifest.parts["text"]
    exact = text_part.dtype == "fp32"
    llm = open_llama(str(bundle / text_part.file), n_ctx=backend.max_context,
                     n_batch=backend.n_batch, n_ubatch=backend.n_batch, n_threads=threads,
                     n_threads_batch=threads, swa_full=True, verbose=False,
                     type_k=llama_cpp.GGML_TYPE_F32 if exact else llama_cpp.GGML_TYPE_F16,
                     type_v=llama_cpp.GGML_TYPE_F32 if exact else llama_cpp.GGML_TYPE_F16,
                     flash_attn=text_part.dtype not in ("fp32", "fp16"))  # as LlamaCppBackend
    runs = {"ours": [], "backend": [], "direct": []}
    tokens = {}
    for r in range(repeats):
        figures, tokens["ours"] = run_ours(vlm, prompt, decode)
        runs["ours"].append(figures)
        n = figures["decode_tokens"]
        figures, tokens["backend"] = run_backend(backend, ids, n)
        runs["backend"].append(figures)
        figures, tokens["direct"] = run_direct(llm, ids.tolist(), n)
        runs["direct"].append(figures)
        log(f"  run {r + 1}: " + ", ".join(f"{k} prefill {v[-1]['prefill_tps']:.1f} decode {v[-1]['decode_tps']:.1f}"
                                           for k, v in runs.items()))
    vlm.close()
    same = tokens["ours"] == tokens["backend"][: len(tokens["ours"])] == tokens["direct"][: len(tokens["ours"])]
    metrics = ("prefill_tps", "decode_tps", "outside_llama_ms_per_token")
    med = {k: {m: statistics.median(x[m] for x in v) for m in metrics} for k, v in runs.items()}
    out = {"bundle": str(bundle), "text_dtype": text_part.dtype, "prompt_tokens": int(len(ids)),
           "decode_tokens": runs["ours"][0]["decode_tokens"], "same_tokens": bool(same), "median": med,
           "overhead": {m: 1 - med["ours"][m] / med["direct"][m] for m in ("prefill_tps", "decode_tps")},
           "backend_overhead": {m: 1 - med["backend"][m] / med["direct"][m] for m in ("prefill_tps", "decode_tps")},
           # Our layers' own cost per token beyond llama-cpp-python's, relative to a direct decode step.
           "extra_ms_per_token": med["ours"]["outside_llama_ms_per_token"] - med["direct"]["outside_llama_ms_per_token"],
           "extra_fraction_of_direct_step": (med["ours"]["outside_llama_ms_per_token"]
                                             - med["direct"]["outside_llama_ms_per_token"])
           * med["direct"]["decode_tps"] / 1e3,
           "runs": runs}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="gemma3-270m")
    parser.add_argument("--quants", default="f16,q4_0")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompt-words", type=int, default=120)
    parser.add_argument("--decode", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bundle", action="append", default=[], help="benchmark this bundle dir instead")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "gguf.json"))
    args = parser.parse_args()

    bundles = [Path(b) for b in args.bundle]
    if not bundles:
        import models

        bundles = [models.gguf_bundle(name, q) for name in args.models.split(",") for q in args.quants.split(",")]
    global CLOCK
    CLOCK = DecodeClock()
    results = []
    for bundle in bundles:
        log(f"benchmarking {bundle}")
        res = bench_bundle(bundle, args.threads, args.prompt_words, args.decode, args.repeats)
        log(f"  median tokens/s: ours prefill {res['median']['ours']['prefill_tps']:.1f} / decode "
            f"{res['median']['ours']['decode_tps']:.1f}; direct {res['median']['direct']['prefill_tps']:.1f} / "
            f"{res['median']['direct']['decode_tps']:.1f}; overhead prefill {100 * res['overhead']['prefill_tps']:.1f}%"
            f" decode {100 * res['overhead']['decode_tps']:.1f}%; same tokens: {res['same_tokens']}; outside llama_decode "
            f"ours {res['median']['ours']['outside_llama_ms_per_token']:.3f} ms/token vs direct "
            f"{res['median']['direct']['outside_llama_ms_per_token']:.3f} "
            f"(extra = {100 * res['extra_fraction_of_direct_step']:.2f}% of a direct step)")
        results.append(res)
    import llama_cpp

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "threads": args.threads},
        "llama_cpp_python": llama_cpp.__version__, "settings": vars(args), "results": results}, indent=2) + "\n")
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
