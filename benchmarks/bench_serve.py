"""`edgevlm serve` under load, and what keeping the conversation across requests is worth.

  python benchmarks/bench_serve.py load     --model minicpmv-0.5b --recipe w4 [--clients 4] [--seconds 60]
  python benchmarks/bench_serve.py followup --model minicpmv-0.5b --recipe w4 [--gguf q4_0] [--rounds 5]
  python benchmarks/bench_serve.py smoke    # both, for a few seconds, on the tiny MiniCPM-V (numbers mean nothing)

Bundles come from benchmarks/models.py (built once, cached), or --bundle / --gguf-bundle give them.
Every server runs in its own process on 127.0.0.1, with the same thread count (--threads, default 2);
clients are threads in this process using the official openai client, streaming.

load: N clients for a fixed time, each looping over a new question about an image, a follow-up in its
own conversation, and a text-only question. Reports requests/s, time to first token (first content
chunk) p50/p95, errors (must be 0) and the server's RSS after one warm-up request and at the end
(must stay flat).

followup: per round a new image (so the first question always encodes it), question 1, then question
2 with the history: the TTFT of question 2 is the figure. Engines: ours (reuse on), ours with reuse
off (--conversations 0 --vision-cache-mb 0: every request re-encodes the image and re-feeds the whole
conversation, which is what llama-server does while an mmproj is loaded, ggml-org/llama.cpp#21133),
the same two on the GGUF bundle (llama.cpp backend), and llama-cpp-python's own OpenAI server on the
GGUF bundle's text.gguf + mmproj.gguf (chat format minicpm-v-2.6; it clears its KV cache for every
multimodal request) when llama_cpp.server is importable.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import cpu_info  # noqa: E402


def log(*parts) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *parts, flush=True)


# -- servers -------------------------------------------------------------------------------------
class ServerProcess:
    """A server command in its own process on a free 127.0.0.1 port; ready once GET /v1/models answers."""

    def __init__(self, command: list[str], log_path: Path, headers: dict | None = None, timeout: float = 300):
        import http.client

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "w")
        command = [part.replace("{port}", str(self.port)) for part in command]
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{command[:4]} exited at start:\n{self.log()[-3000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/v1/models", headers=headers or {})
                if conn.getresponse().status < 500:
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{command[:4]} did not answer within {timeout} s:\n{self.log()[-3000:]}")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def rss_mb(self) -> float:
        import psutil

        return psutil.Process(self.process.pid).memory_info().rss / 2**20

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


def ours(bundle: Path, threads: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "edgevlm.cli", "serve", str(bundle), "--port", "{port}", "--device", "cpu",
            "--threads", str(threads), *extra]


def llama_cpp_python(gguf_bundle: Path, threads: int) -> list[str]:
    manifest = json.loads((gguf_bundle / "manifest.json").read_text())
    files = {name: gguf_bundle / part["file"] for name, part in manifest["parts"].items()}
    return [sys.executable, "-m", "llama_cpp.server", "--model", str(files["text"]), "--clip_model_path",
            str(files["mmproj"]), "--chat_format", "minicpm-v-2.6", "--n_ctx", str(manifest["text"]["max_context"]),
            "--n_threads", str(threads), "--n_threads_batch", str(threads), "--port", "{port}", "--host", "127.0.0.1"]


# -- requests ------------------------------------------------------------------------------------
def picture(width: int, height: int, seed: int) -> str:
    """A deterministic structured picture as a base64 PNG data: URL (no torch needed)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // width, y * 255 // height, ((x // 40 + y // 40 + seed) % 2) * 200], axis=-1)
    pixels = np.clip(pixels + rng.integers(-20, 21, pixels.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def image_turn(url: str, text: str) -> dict:
    return {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": text}]}


def timed_answer(client, messages: list, max_tokens: int) -> tuple[str, float, int | None]:
    """(answer, seconds to the first content chunk, cached prompt tokens if the server says), streaming, greedy."""
    start, first, parts, cached = time.perf_counter(), None, [], None
    stream = client.chat.completions.create(model="bench", messages=messages, max_tokens=max_tokens,
                                            temperature=0, stream=True, stream_options={"include_usage": True})
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            first = first or time.perf_counter()
            parts.append(chunk.choices[0].delta.content)
        details = chunk.usage.prompt_tokens_details if getattr(chunk, "usage", None) else None
        if details is not None:
            cached = details.cached_tokens
    return "".join(parts), (first or time.perf_counter()) - start, cached


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


# -- load ----------------------------------------------------------------------------------------
def run_load(base_url: str, rss_mb, clients: int = 4, seconds: float = 30, max_tokens: int = 16,
             image_size: tuple[int, int] = (640, 480), api_key: str = "unused") -> dict:
    """N clients for ``seconds`` against a running server; ``rss_mb()`` reads the server's RSS."""
    import openai

    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=600)
    images = [picture(*image_size, seed) for seed in range(4)]
    for url in images:  # warm-up: every image and request kind once, so the RSS baseline has its arenas and caches
        history = [image_turn(url, "Warm-up: what is this?")]
        history += [{"role": "assistant", "content": timed_answer(client, history, max_tokens)[0]},
                    {"role": "user", "content": "And what else?"}]
        timed_answer(client, history, max_tokens)
    timed_answer(client, [{"role": "user", "content": "Warm-up: say something."}], max_tokens)
    rss_before = rss_mb()
    ttfts, errors, done, lock = [], [], [0], threading.Lock()
    deadline = time.monotonic() + seconds

    def one_client(index: int) -> None:
        history: list = []
        step = index
        while time.monotonic() < deadline:
            kind = step % 3
            step += 1
            if kind == 0:
                history = [image_turn(images[step % len(images)], f"Client {index}: describe the picture.")]
            elif kind == 1 and history:
                history = history + [{"role": "user", "content": "And what else do you see?"}]
            else:
                history = [{"role": "user", "content": f"Client {index}, step {step}: say something."}]
            try:
                text, ttft, _ = timed_answer(client, history, max_tokens)
            except Exception as exc:  # every failure is a finding: counted, named
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            history = history + [{"role": "assistant", "content": text}]
            with lock:
                ttfts.append(ttft)
                done[0] += 1

    start = time.monotonic()
    threads = [threading.Thread(target=one_client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    rss_after = rss_mb()
    return {"clients": clients, "seconds": round(elapsed, 1), "requests": done[0],
            "requests_per_s": round(done[0] / elapsed, 3), "ttft_p50_ms": round(percentile(ttfts, 50) * 1e3, 1),
            "ttft_p95_ms": round(percentile(ttfts, 95) * 1e3, 1), "errors": len(errors), "error_samples": errors[:5],
            "rss_before_mb": round(rss_before, 1), "rss_after_mb": round(rss_after, 1),
            "rss_growth_mb": round(rss_after - rss_before, 1)}


# -- follow-up -----------------------------------------------------------------------------------
def run_followup(base_url: str, rounds: int = 3, max_tokens: int = 16, image_size: tuple[int, int] = (640, 480)) -> dict:
    import openai

    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=600)
    timed_answer(client, [image_turn(picture(*image_size, 999), "Warm-up: what is this?")], 2)
    first_ttft, second_ttft, cached = [], [], []
    for r in range(rounds):
        history = [image_turn(picture(*image_size, 100 + r), "What is in the picture?")]
        text, ttft1, _ = timed_answer(client, history, max_tokens)
        history += [{"role": "assistant", "content": text}, {"role": "user", "content": "What colour is it mostly?"}]
        _, ttft2, cached2 = timed_answer(client, history, max_tokens)
        first_ttft.append(ttft1)
        second_ttft.append(ttft2)
        cached.append(cached2)
    return {"rounds": rounds, "q1_ttft_ms": round(statistics.median(first_ttft) * 1e3, 1),
            "q2_ttft_ms": round(statistics.median(second_ttft) * 1e3, 1),
            "q2_ttft_ms_all": [round(t * 1e3, 1) for t in second_ttft], "q2_cached_tokens": cached}


def followup_engines(bundle: Path, gguf: Path | None, threads: int) -> dict[str, list[str]]:
    engines = {"ours": ours(bundle, threads), "ours-reuse-off": ours(bundle, threads, *REUSE_OFF)}
    if gguf is not None:
        engines["ours-gguf"] = ours(gguf, threads)
        engines["ours-gguf-reuse-off"] = ours(gguf, threads, *REUSE_OFF)
        family = json.loads((gguf / "manifest.json").read_text()).get("family")
        try:
            import llama_cpp.server  # noqa: F401
        except ImportError as exc:
            log(f"llama-cpp-python's server is not installed ({exc}): pip install 'llama-cpp-python[server]'")
        else:
            if family == "minicpmv":  # its only chat handler for our families: MiniCPMv26ChatHandler
                engines["llama-cpp-python-server"] = llama_cpp_python(gguf, threads)
    return engines


REUSE_OFF = ("--conversations", "0", "--vision-cache-mb", "0")


# -- command line --------------------------------------------------------------------------------
def resolve_bundles(args) -> tuple[Path, Path | None]:
    if args.bundle:
        return Path(args.bundle), Path(args.gguf_bundle) if args.gguf_bundle else None
    import models

    bundle = models.onnx_bundle(args.model, args.recipe)
    gguf = models.gguf_bundle(args.model, args.gguf) if args.gguf != "none" else None
    return bundle, gguf


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["load", "followup", "smoke"])
    parser.add_argument("--model", default="minicpmv-0.5b", help="a benchmarks/models.py name")
    parser.add_argument("--recipe", default="w4", help="ONNX bundle: fp32 | int8 | w4 | ...")
    parser.add_argument("--gguf", default="q4_0", help="GGUF bundle quant for the llama.cpp rows (none: skip)")
    parser.add_argument("--bundle", help="an ONNX bundle instead of --model/--recipe")
    parser.add_argument("--gguf-bundle", help="a GGUF bundle instead of --model/--gguf")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.what == "smoke":
        args.model, args.recipe, args.gguf = "tiny-minicpmv", "fp32", "f32"
        args.clients, args.seconds, args.rounds = 2, 5, 2
    bundle, gguf = resolve_bundles(args)
    results: dict = {"bundle": str(bundle), "gguf_bundle": str(gguf) if gguf else None, "threads": args.threads,
                     "cpu": cpu_info.cpu()["model"], "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    with tempfile.TemporaryDirectory() as logs:
        if args.what in ("load", "smoke"):
            server = ServerProcess(ours(bundle, args.threads, "--max-queue", str(2 * args.clients)),
                                   Path(logs) / "load.log")
            try:
                results["load"] = run_load(server.base_url, server.rss_mb, args.clients, args.seconds, args.max_tokens)
            finally:
                server.stop()
            log("load", json.dumps(results["load"]))
        if args.what in ("followup", "smoke"):
            results["followup"] = {}
            for name, command in followup_engines(bundle, gguf, args.threads).items():
                server = ServerProcess(command, Path(logs) / f"{name}.log")
                try:
                    results["followup"][name] = run_followup(server.base_url, args.rounds, args.max_tokens)
                finally:
                    server.stop()
                log("followup", name, json.dumps(results["followup"][name]))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
