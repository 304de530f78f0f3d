"""The memory-bandwidth roofline for decode: tokens/s <= bandwidth / bytes read per token.

A decode step of a small-batch transformer reads every weight once (plus the KV cache of the
context) and does ~2 flops per weight byte-ish: on a CPU it is bound by memory bandwidth, not by
arithmetic. So the ceiling is ``bandwidth / (weight bytes + context * KV bytes per position)``, and
``measured tokens/s / ceiling`` says how much of the machine an engine uses.

Bandwidth method (``measure_bandwidth``): a 512 MiB float32 array (far larger than any cache),
split in ``threads`` contiguous parts; each thread runs ``numpy.sum`` over its part (numpy's SIMD
reduction releases the GIL, so the threads stream in parallel). Bytes read / wall time, median of
``repeats`` passes after one warm-up pass. A second figure, ``numpy.copyto`` between two such arrays
(read + write counted), is reported for reference; the roofline uses the read figure because
decode traffic is reads. This is a STREAM-like lower bound on what the hardware can deliver.
"""

from __future__ import annotations

import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np


def measure_bandwidth(size_mib: int = 512, repeats: int = 7, threads: int = 2) -> dict[str, Any]:
    """Median read (sum) and copy bandwidth of this machine in GB/s (1e9 bytes/s)."""
    n = size_mib * (1 << 20) // 4
    src = np.ones(n, np.float32)  # touched: pages are resident before timing
    dst = np.empty_like(src)
    dst.fill(0)
    parts = np.array_split(np.arange(n), threads)
    bounds = [(int(p[0]), int(p[-1]) + 1) for p in parts]

    def timed(fn) -> float:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(fn, bounds))  # warm-up
            samples = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                list(pool.map(fn, bounds))
                samples.append(time.perf_counter() - t0)
        return statistics.median(samples), min(samples), max(samples)

    read = timed(lambda b: float(src[b[0]:b[1]].sum()))
    copy = timed(lambda b: np.copyto(dst[b[0]:b[1]], src[b[0]:b[1]]))
    nbytes = src.nbytes
    return {"method": f"numpy sum over a {size_mib} MiB float32 array in {threads} threads (read); numpy copyto "
                      f"(read+write); median of {repeats} after a warm-up",
            "read_gb_s": round(nbytes / read[0] / 1e9, 2),
            "read_gb_s_min_max": [round(nbytes / read[2] / 1e9, 2), round(nbytes / read[1] / 1e9, 2)],
            "copy_gb_s": round(2 * nbytes / copy[0] / 1e9, 2), "threads": threads, "size_mib": size_mib}


# -- bytes read per decode step -------------------------------------------------------------------

_ONNX_BYTES = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2, 21: 1, 22: 1}


def onnx_weight_bytes(path: Path, exclude_gather: bool = True) -> int:
    """Bytes of an ONNX graph's initializers, without tables only ever gathered from (embedding lookups
    read one row per token, not the table). ``path``: a .onnx file or a folder of them.

    Counted in a separate process: parsing a graph whose weights are inline (a w4 decoder under 256 MiB)
    holds them in memory, and the engine processes report their peak RSS (Gemma 3 270M w4: +480 MB)."""
    import subprocess
    import sys

    flag = ["--keep-gathered"] if not exclude_gather else []
    out = subprocess.run([sys.executable, __file__, "--onnx-weight-bytes", str(path), *flag],
                         capture_output=True, text=True, check=True).stdout
    return int(out.split()[-1])


def _onnx_weight_bytes(path: Path, exclude_gather: bool) -> int:
    import onnx

    files = sorted(Path(path).glob("*.onnx")) if Path(path).is_dir() else [Path(path)]
    total = 0
    for file in files:
        graph = onnx.load(str(file), load_external_data=False).graph
        users: dict[str, set[str]] = {}
        for node in graph.node:
            for name in node.input:
                users.setdefault(name, set()).add(node.op_type)
        for init in graph.initializer:
            if exclude_gather and users.get(init.name) == {"Gather"}:
                continue
            total += int(np.prod(init.dims, dtype=np.int64)) * _ONNX_BYTES.get(init.data_type, 4)
    return total


def gguf_weight_bytes(path: Path) -> int:
    """Bytes of a text GGUF's tensors; token_embd is only gathered unless the output matrix is tied to it."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    names = {t.name for t in reader.tensors}
    return sum(int(t.n_bytes) for t in reader.tensors if not (t.name == "token_embd.weight" and "output.weight" in names))


def gguf_kv_bytes(path: Path, dtype_bytes: int) -> int:
    import gguf

    reader = gguf.GGUFReader(str(path))
    arch = reader.fields["general.architecture"].contents()

    def field(key: str, default: Any = None) -> Any:
        f = reader.fields.get(f"{arch}.{key}")
        return f.contents() if f is not None else default

    heads = field("attention.head_count")
    head_dim = field("attention.key_length") or field("embedding_length") // heads
    recurrent = field("attention.recurrent_layers") or []  # hybrid models: only attention layers keep KV rows
    layers = field("block_count") - sum(bool(r) for r in recurrent)
    return 2 * layers * field("attention.head_count_kv") * head_dim * dtype_bytes


def gguf_decode_bytes(path: Path, kv_dtype_bytes: int = 2) -> tuple[int, int]:
    """(weight bytes per step, KV bytes per cached position) of a text GGUF."""
    return gguf_weight_bytes(path), gguf_kv_bytes(path, kv_dtype_bytes)


def bundle_decode_bytes(bundle: Path) -> tuple[int, int]:
    """(weight bytes per step, KV bytes per cached position) of one of our bundles (ONNX or GGUF)."""
    manifest = json.loads((Path(bundle) / "manifest.json").read_text())
    text = manifest["text"]
    if manifest["format"] == "gguf":
        part = manifest["parts"]["text"]
        kv_bytes = 4 if part.get("dtype") == "fp32" else 2  # the backend's KV type (f32 only for f32 bundles)
        return gguf_decode_bytes(Path(bundle) / part["file"], kv_bytes)
    part = manifest["parts"]["decoder"]
    types = text.get("layer_types") or ["full_attention"] * text["num_layers"]
    kv_layers = sum(t != "linear_attention" for t in types)
    kv = 2 * kv_layers * text["num_kv_heads"] * text["head_dim"] * 4  # float32 KV buffers
    # recurrent layers read and write a fixed-size float32 state per step, whatever the context
    states = part.get("binding", {}).get("states", {})
    state_bytes = 2 * (len(types) - kv_layers) * sum(int(np.prod(s["shape"])) * 4 for s in states.values())
    return onnx_weight_bytes(Path(bundle) / part["file"]) + state_bytes, kv


def kv_bytes_from_config(genai_model_cfg: dict[str, Any], dtype_bytes: int = 4) -> int:
    dec = genai_model_cfg["decoder"]
    return 2 * dec["num_hidden_layers"] * dec["num_key_value_heads"] * dec["head_size"] * dtype_bytes


def kv_bytes_from_hf(config: Any, dtype_bytes: int = 4) -> int:
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * dtype_bytes


def ceiling_tokens_per_s(bandwidth_gb_s: float, weights_bytes: int, kv_bytes: int, context: int) -> float:
    """The roofline: tokens/s if every byte needed per step streamed at the measured bandwidth."""
    return bandwidth_gb_s * 1e9 / (weights_bytes + context * kv_bytes)


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--onnx-weight-bytes"]:  # onnx_weight_bytes' own process
        print(_onnx_weight_bytes(Path(sys.argv[2]), exclude_gather="--keep-gathered" not in sys.argv))
    else:
        print(json.dumps(measure_bandwidth(), indent=2))
