"""Native-resolution (Qwen2-VL class) vision encoding and time to first token of one engine, per resolution.

    python benchmarks/native_vision.py ENGINE MODEL [--runs 3] [--threads 2] [--json OUT]

One image per resolution (RESOLUTIONS: a 448x448 image at a 256-token budget, an 896x896 one at a
1024-token budget: both exact, no rounding), the budget passed per request (``max_pixels``).

Vision engines (the vision part alone, each image one call):
- ours-onnx-fp32 / ours-onnx-w4: the bundle's vision part (``open_session`` + ``encode_chunks``, the
  runtime's feeding code) on our preprocessing (timed separately);
- torch-eager: transformers' own vision tower + merger (``get_image_features``, fp32, eager attention);
- mtmd: llama.cpp's libmtmd with the bundle's mmproj (f16) on the image (its own preprocessing inside).
TTFT engines (whole first token of "Describe the image." + the image, a fresh chat and no vision cache):
- ttft-ours-onnx-w4 / ttft-ours-gguf-q4_0: ``VLM.generate(..., max_new_tokens=1)`` (its measured TTFT);
- ttft-llamacpp-mtmd: llama.cpp's own path: ``mtmd_tokenize`` + ``mtmd_helper_eval_chunks`` on the GGUF
  bundle's text.gguf (Q4_0) + mmproj, then the first token's logits;
- ttft-torch-eager: transformers' processor + model forward of the prompt (fp32, eager).
Medians and min-max over ``runs`` after one warm-up; the process's peak RSS.
"""

from __future__ import annotations

import ctypes
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import models  # noqa: E402
from engine_cli import engine_main  # noqa: E402

RESOLUTIONS = {"256 tokens": ((448, 448), 28 * 28 * 256), "1024 tokens": ((896, 896), 28 * 28 * 1024)}
PROMPT = "Describe the image."


def _image(size: tuple[int, int]):
    from edgevlm.export.validate import test_image

    return test_image(*size)


def _summary(values: list[float]) -> dict[str, float]:
    import statistics

    return {"median": round(statistics.median(values), 1), "min": round(min(values), 1),
            "max": round(max(values), 1), "n": len(values)}


def _per_resolution(runs: int, measure: Callable[[Any, int], dict[str, list[float]]]) -> dict[str, Any]:
    """{resolution: {figure: summary}}; ``measure(image, max_pixels)`` -> {figure: [ms per run]} (warm-up first)."""
    out = {}
    for name, (size, budget) in RESOLUTIONS.items():
        measure(_image((224, 224)), 28 * 28 * 64)  # warm-up on a small image
        samples: dict[str, list[float]] = {}
        for _ in range(runs):
            for key, value in measure(_image(size), budget).items():
                samples.setdefault(key, []).append(value)
        out[name] = {k: _summary(v) if isinstance(v[0], float) else v[0] for k, v in samples.items()}
    return out


def vision_ours(model: str, recipe: str, runs: int, threads: int) -> dict[str, Any]:
    from edgevlm.manifest import read_manifest
    from edgevlm.processing.config import ProcessorConfig
    from edgevlm.runtime.backends.onnxruntime import open_session
    from edgevlm.runtime.backends.ort_vision import encode_chunks
    from edgevlm.runtime.images import plan_image, prepare_image, request_processor

    bundle = models.onnx_bundle(model, recipe)
    manifest = read_manifest(bundle, verify=False)
    session = open_session(bundle, manifest.parts["vision"], ["CPUExecutionProvider"], threads)
    derived = manifest.parts["vision"].binding.get("derived_inputs", {})
    base = ProcessorConfig.from_dict(manifest.processor)

    def measure(image: Any, budget: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        cfg = request_processor(base, {"max_pixels": budget})
        plan = plan_image(image, cfg, 0)
        prepared = prepare_image(image, cfg, plan)
        t1 = time.perf_counter()
        encode_chunks(lambda feeds: session.run(None, feeds)[0], prepared.inputs, manifest.vision, derived)
        return {"preprocessing_ms": (t1 - t0) * 1e3, "vision_ms": (time.perf_counter() - t1) * 1e3,
                "image_tokens": plan.n_tokens}

    return _per_resolution(runs, measure)


def vision_torch(model: str, runs: int, threads: int) -> dict[str, Any]:
    import torch

    from edgevlm.families import load_reference
    from edgevlm.processing.native_resolution import NativeResolutionConfig, preprocess_native_resolution

    torch.set_num_threads(threads)
    ref = load_reference(models.checkpoint(model), torch.float32)

    def measure(image: Any, budget: int) -> dict[str, Any]:
        item = preprocess_native_resolution(image, NativeResolutionConfig(max_pixels=budget))
        pixels, grid = torch.from_numpy(item.pixel_values), torch.from_numpy(item.grid_thw[None])
        t0 = time.perf_counter()
        with torch.inference_mode():
            ref.image_features(pixels, grid)
        return {"vision_ms": (time.perf_counter() - t0) * 1e3, "image_tokens": item.plan.n_tokens}

    return _per_resolution(runs, measure)


def vision_mtmd(model: str, runs: int, threads: int) -> dict[str, Any]:
    from edgevlm.runtime.backends.llamacpp_mtmd import MtmdImageEncoder

    bundle = models.gguf_bundle(model, "q4_0")
    enc = MtmdImageEncoder(bundle / "text.gguf", bundle / "mmproj.gguf", threads=threads)

    def measure(image: Any, budget: int) -> dict[str, Any]:
        rgb = np.asarray(image.convert("RGB"))
        t0 = time.perf_counter()
        features = enc.encode(rgb)  # mtmd's own preprocessing (the sizes are multiples of 28: kept) + encoding
        return {"vision_ms": (time.perf_counter() - t0) * 1e3, "image_tokens": int(sum(len(f) for f in features))}

    return _per_resolution(runs, measure)


def ttft_ours(model: str, bundle: Path, runs: int, threads: int) -> dict[str, Any]:
    import edgevlm
    from edgevlm.runtime.vision_cache import VisionCache

    vlm = edgevlm.load(str(bundle), threads=threads)
    vlm.vision_cache = VisionCache(0)  # every run encodes its image

    def measure(image: Any, budget: int) -> dict[str, Any]:
        result = vlm.generate(PROMPT, [image], max_new_tokens=1, max_pixels=budget)
        s = result.stats
        return {"ttft_ms": s.time_to_first_token_ms, "vision_ms": s.vision_ms, "prefill_ms": s.prefill_ms,
                "preprocessing_ms": s.slicing_ms, "prompt_tokens": s.prompt_tokens}

    return _per_resolution(runs, measure)


def ttft_llamacpp_mtmd(model: str, runs: int, threads: int) -> dict[str, Any]:
    import llama_cpp as L
    from llama_cpp import mtmd_cpp as M

    from edgevlm.runtime.backends.llamacpp_mtmd import MtmdImageEncoder

    bundle = models.gguf_bundle(model, "q4_0")
    enc = MtmdImageEncoder(bundle / "text.gguf", bundle / "mmproj.gguf", threads=threads)
    params = L.llama_context_default_params()
    params.n_ctx, params.n_batch, params.n_threads, params.n_threads_batch = models.MAX_CONTEXT, 2048, threads, threads
    ctx = L.llama_init_from_model(enc.model, params)
    vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(enc.model))
    # the prompt our runtime builds (published chat template; mtmd adds <|vision_start|>/<|vision_end|> itself)
    template = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n{marker}" + PROMPT
                + "<|im_end|>\n<|im_start|>assistant\n")

    def measure(image: Any, budget: int) -> dict[str, Any]:
        L.llama_memory_clear(L.llama_get_memory(ctx), True)
        rgb = np.ascontiguousarray(np.asarray(image.convert("RGB")))
        t0 = time.perf_counter()
        text = template.format(marker=enc.marker.decode()).encode()
        bitmap = M.mtmd_bitmap_init(image.width, image.height, rgb.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)))
        chunks = M.mtmd_input_chunks_init()
        M.mtmd_tokenize(enc.ctx, chunks, ctypes.byref(M.mtmd_input_text(text, len(text), True, True)),
                        (M.mtmd_bitmap_p_ctypes * 1)(bitmap), 1)
        n_past = L.llama_pos(0)
        M.mtmd_helper_eval_chunks(enc.ctx, ctx, chunks, 0, 0, 2048, True, ctypes.byref(n_past))
        int(np.argmax(np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, -1), shape=(vocab,))))
        ttft = (time.perf_counter() - t0) * 1e3
        tokens = int(M.mtmd_helper_get_n_tokens(chunks))
        M.mtmd_input_chunks_free(chunks)
        M.mtmd_bitmap_free(bitmap)
        return {"ttft_ms": ttft, "prompt_tokens": tokens}

    return _per_resolution(runs, measure)


def ttft_torch(model: str, runs: int, threads: int) -> dict[str, Any]:
    import torch

    from edgevlm.families import load_reference
    from edgevlm.families.qwen2_vl.reference import hf_processor

    torch.set_num_threads(threads)
    ckpt = models.checkpoint(model)
    ref, processor = load_reference(ckpt, torch.float32), hf_processor(ckpt)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def measure(image: Any, budget: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        inputs = processor(text=[text], images=[image], return_tensors="pt",
                           images_kwargs={"size": {"shortest_edge": 3136, "longest_edge": budget}})
        with torch.inference_mode():
            int(ref.hf(**inputs, logits_to_keep=1).logits[0, -1].argmax())
        return {"ttft_ms": (time.perf_counter() - t0) * 1e3, "prompt_tokens": int(inputs["input_ids"].shape[1])}

    return _per_resolution(runs, measure)


ENGINES: dict[str, tuple[str, Callable[[str, int, int], dict[str, Any]]]] = {
    "ours-onnx-fp32": ("edgevlm ONNX fp32 (vision part)", lambda m, r, t: vision_ours(m, "fp32", r, t)),
    "ours-onnx-w4": ("edgevlm ONNX w4 (vision part)", lambda m, r, t: vision_ours(m, "w4", r, t)),
    "torch-eager": ("PyTorch eager fp32 (transformers' tower)", vision_torch),
    "mtmd": ("llama.cpp mtmd (mmproj f16)", vision_mtmd),
    "ttft-ours-onnx-w4": ("edgevlm ONNX w4", lambda m, r, t: ttft_ours(m, models.onnx_bundle(m, "w4"), r, t)),
    "ttft-ours-gguf-q4_0": ("edgevlm GGUF Q4_0 (vision ONNX fp32)",
                            lambda m, r, t: ttft_ours(m, models.gguf_bundle(m, "q4_0"), r, t)),
    "ttft-llamacpp-mtmd": ("llama.cpp Q4_0 + mtmd (mmproj f16)", ttft_llamacpp_mtmd),
    "ttft-torch-eager": ("PyTorch eager fp32", ttft_torch),
}


def run_engine(name: str, model: str, runs: int = 3, threads: int = 2) -> dict[str, Any]:
    from compare_text import peak_rss_mb

    label, fn = ENGINES[name]
    models.log(f"{model} {name}: {runs} runs per resolution")
    result = {"engine": name, "label": label, "model": model, "threads": threads, "runs": runs,
              "resolutions": {k: {"image": list(size), "max_pixels": budget} for k, (size, budget) in RESOLUTIONS.items()},
              "figures": fn(model, runs, threads)}
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return result


def main() -> None:
    engine_main(__doc__, ENGINES, run_engine, runs=3)


if __name__ == "__main__":
    main()
