"""Time to first token for one image, measured end to end (run once per engine, in its own process).

    python benchmarks/compare_ttft.py ENGINE MODEL [--runs 3] [--threads 2] [--json OUT]

Both sides start from a PNG file on disk and stop when the first answer token is known:
- ours-*: ``VLM.generate(QUESTION, images=[png], max_new_tokens=1)`` on the bundle, i.e. image decode,
  slicing, vision encoding, the chat template, prefill and the first sampled token, through the runtime's
  own turn layers (the figure a user sees). ``GenerationStats`` gives the stages for the record.
- llamacpp-mtmd: stock llama.cpp through its own API: the text GGUF (Q4_0) and the bundle's mmproj (f16)
  in libmtmd; ``mtmd_helper_bitmap_init_from_file`` (decode), ``mtmd_tokenize`` (mtmd's slicing and the
  same chat text with mtmd's marker), ``mtmd_helper_eval_chunks`` (vision encoding + prefill, logits of
  the last position), argmax.
The image is compare_vision's for the model (1000x500; 1024x768 for the tiled families). A prompt longer
than the bundle's context is a skipped row that says so.
Protocol: one untimed warm-up request on another image of the same size (first-call allocations), then
``runs`` requests, each on a different image of the same size (so no feature cache can answer), the cache
cleared before each. Wall and process CPU time per request; median and min-max; peak RSS of the process.
"""

from __future__ import annotations

import ctypes
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import models  # noqa: E402
from engine_cli import engine_main  # noqa: E402
from compare_vision import IMAGE_DESC, _image  # noqa: E402

QUESTION = "Describe this image in one sentence."
TTFT_KINDS = tuple(IMAGE_DESC)  # models with a real-size vision tower (Gemma 3's is tiny and random)


def _images(folder: Path, n: int, size: tuple[int, int]) -> list[Path]:
    """n different PNG files of ``size`` (seeded test images): decoding them is part of the figure."""
    from edgevlm.export.validate import test_image

    paths = []
    for seed in range(n):
        path = folder / f"image{seed}.png"
        test_image(*size, seed=seed).save(path)
        paths.append(path)
    return paths


def _summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 1), "min": round(min(values), 1),
            "max": round(max(values), 1), "n": len(values)}


class Ours:
    def __init__(self, bundle: Path, threads: int):
        import edgevlm

        self.vlm = edgevlm.load(str(bundle), threads=threads)

    def first_token(self, image: Path) -> dict[str, Any]:
        result = self.vlm.generate(QUESTION, images=[str(image)], max_new_tokens=1)
        s = result.stats
        return {"prompt_tokens": s.prompt_tokens, "stages_ms": {"image_load_and_preprocessing": round(s.slicing_ms, 1),
                                                                 "vision": round(s.vision_ms, 1),
                                                                 "prefill": round(s.prefill_ms, 1)}}

    def clear(self) -> None:
        self.vlm.vision_cache = type(self.vlm.vision_cache)()  # a new image would miss anyway; be explicit

    def close(self) -> None:
        self.vlm.close()


class LlamaMtmd:
    """llama.cpp + libmtmd as its own tools run a multimodal prompt (llama-mtmd-cli's eval path)."""

    def __init__(self, bundle: Path, threads: int):
        import llama_cpp as L
        from llama_cpp import _logger
        from llama_cpp import mtmd_cpp as M

        from edgevlm.manifest import read_manifest
        from edgevlm.processing.config import ChatTemplate, ImageLayout
        from edgevlm.processing.prompt import message_turns, render_chat
        from edgevlm.runtime.backends.llamacpp_amx import model_params

        self.L, self.M = L, M
        _logger.set_verbose(False)  # llama.cpp's and mtmd's logs: errors only
        M.mtmd_helper_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
        L.llama_backend_init()
        self.model = L.llama_model_load_from_file(str(bundle / "text.gguf").encode(), model_params(n_gpu_layers=0))
        manifest = read_manifest(bundle, verify=False)
        self.n_ctx = int(manifest.text.max_context)  # the context the bundle was exported for, as ours runs
        cparams = L.llama_context_default_params()
        cparams.n_ctx, cparams.n_batch, cparams.n_ubatch = self.n_ctx, 512, 512
        cparams.n_threads = cparams.n_threads_batch = threads
        self.ctx = L.llama_init_from_model(self.model, cparams)
        mparams = M.mtmd_context_params_default()
        mparams.use_gpu, mparams.n_threads, mparams.print_timings, mparams.warmup = False, threads, False, False
        self.mtmd = M.mtmd_init_from_file(str(bundle / "mmproj.gguf").encode(), self.model, mparams)
        if not self.mtmd:
            raise RuntimeError("mtmd could not load the mmproj")
        layout, template = ImageLayout.from_dict(manifest.layout), ChatTemplate.from_dict(manifest.chat_template)
        chat = render_chat(message_turns(QUESTION, 1, layout, template), template)  # the text ours renders
        self.text = chat.replace(layout.marker, M.mtmd_default_marker().decode()).encode()
        self.n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(self.model))

    def first_token(self, image: Path) -> dict[str, Any]:
        L, M = self.L, self.M
        bitmap = M.mtmd_helper_bitmap_init_from_file(self.mtmd, str(image).encode(), False)
        bitmap = getattr(bitmap, "bitmap", bitmap)
        if not bitmap:
            raise RuntimeError(f"mtmd could not read {image}")
        chunks = M.mtmd_input_chunks_init()
        try:
            text = M.mtmd_input_text(self.text, len(self.text), True, True)
            if M.mtmd_tokenize(self.mtmd, chunks, ctypes.byref(text), (M.mtmd_bitmap_p_ctypes * 1)(bitmap), 1) != 0:
                raise RuntimeError("mtmd_tokenize failed")
            needed = int(M.mtmd_helper_get_n_tokens(chunks))
            if needed >= self.n_ctx:
                from edgevlm.errors import PromptError

                raise PromptError(f"the prompt needs {needed} tokens, more than the context of {self.n_ctx}")
            n_past = L.llama_pos(0)
            if M.mtmd_helper_eval_chunks(self.mtmd, self.ctx, chunks, 0, 0, 512, True, ctypes.byref(n_past)) != 0:
                raise RuntimeError("mtmd_helper_eval_chunks failed")
            logits = np.ctypeslib.as_array(L.llama_get_logits_ith(self.ctx, -1), shape=(self.n_vocab,))
            return {"prompt_tokens": int(n_past.value), "first_token": int(logits.argmax())}
        finally:
            M.mtmd_input_chunks_free(chunks)
            M.mtmd_bitmap_free(bitmap)

    def clear(self) -> None:
        self.L.llama_memory_clear(self.L.llama_get_memory(self.ctx), True)

    def close(self) -> None:
        self.M.mtmd_free(self.mtmd)
        self.L.llama_free(self.ctx)
        self.L.llama_model_free(self.model)


def _ours(recipe: str) -> Callable[[str, int], Any]:
    def make(model: str, threads: int) -> Any:
        if recipe == "gguf-q4_0":
            return Ours(models.gguf_bundle(model, "q4_0"), threads)
        return Ours(models.onnx_bundle(model, recipe), threads)
    return make


def _mtmd(model: str, threads: int) -> Any:
    bundle = models.gguf_bundle(model, "q4_0")
    if not (bundle / "mmproj.gguf").is_file():
        raise Unsupported("llama.cpp's mtmd has no projector for this family (no mmproj in the GGUF bundle): not run")
    return LlamaMtmd(bundle, threads)


class Unsupported(Exception):
    pass


# engine -> (label, factory, vision precision class)
ENGINES: dict[str, tuple[str, Callable[[str, int], Any], str]] = {
    "ours-onnx-fp32": ("edgevlm ONNX fp32 (vision fp32)", _ours("fp32"), "fp32"),
    "ours-onnx-w4": ("edgevlm ONNX w4 (vision w4)", _ours("w4"), "w4"),
    "ours-onnx-mixed": ("edgevlm ONNX mixed (text w4, vision int8)", _ours("mixed"), "int8"),
    "ours-onnx-int8": ("edgevlm ONNX int8 (vision int8)", _ours("int8"), "int8"),
    "ours-gguf-q4_0": ("edgevlm GGUF Q4_0 (vision ONNX fp32)", _ours("gguf-q4_0"), "fp32"),
    "llamacpp-mtmd": ("llama.cpp Q4_0 + mtmd (mmproj f16)", _mtmd, "f16"),
}


def run_engine(name: str, model: str, runs: int = 3, threads: int = 2) -> dict[str, Any]:
    from compare_text import peak_rss_mb

    from edgevlm.errors import PromptError

    label, factory, vision_precision = ENGINES[name]
    size = _image(model).size
    result: dict[str, Any] = {"engine": name, "label": label, "model": model, "threads": threads, "runs": runs,
                              "image": list(size), "question": QUESTION, "vision_precision": vision_precision}
    if models.spec(model).kind not in TTFT_KINDS:
        return {**result, "skipped": "no real-size vision tower in this benchmark model"}
    t0 = time.perf_counter()
    try:
        engine = factory(model, threads)
    except Unsupported as exc:
        return {**result, "skipped": str(exc)}
    result["load_s"] = round(time.perf_counter() - t0, 2)
    with tempfile.TemporaryDirectory() as tmp:
        images = _images(Path(tmp), runs + 1, size)
        engine.clear()
        try:
            engine.first_token(images[-1])  # warm-up, untimed
        except PromptError as exc:  # e.g. 13 tiles of 256 tokens in a 2048-token benchmark bundle
            engine.close()
            return {**result, "skipped": str(exc).split(";")[0]}
        wall, cpu, details = [], [], []
        for image in images[:runs]:
            engine.clear()
            w0, c0 = time.perf_counter(), time.process_time()
            details.append(engine.first_token(image))
            wall.append((time.perf_counter() - w0) * 1e3)
            cpu.append((time.process_time() - c0) * 1e3)
            models.log(f"{model} ttft {name}: {wall[-1]:.0f} ms (CPU {cpu[-1]:.0f} ms)")
    engine.close()
    result.update(ttft_ms=_summary(wall), cpu_ms=_summary(cpu), prompt_tokens=details[0]["prompt_tokens"],
                  stages_ms=details[len(details) // 2].get("stages_ms"), peak_rss_mb=round(peak_rss_mb(), 1))
    return result


def main() -> None:
    engine_main(__doc__, ENGINES, run_engine, runs=3)


if __name__ == "__main__":
    main()
