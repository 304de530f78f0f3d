"""Vision encoding of one image, side by side: our ONNX vision part vs PyTorch eager vs llama.cpp's mtmd.

    python benchmarks/compare_vision.py ENGINE MODEL [--runs 2] [--threads 2] [--json OUT]

The image is ``test_image(1000, 500)``: MiniCPM-V slices it into grid [2, 1], i.e. three chunks
(a 23x45-patch overview and two 32x32-patch slices of 448x448), 192 image tokens.

- ours-*: ``prepare_image`` (our slicing + normalisation; timed as preprocessing) then the backend's
  ``encode_images``; "sequential" runs one chunk per session call (max_batch=1), "batched" is the
  runtime's default (chunks of equal size in one call, cropped to their own length, at most
  BATCH_PATCHES = 1024 patches per call: runtime/backends/vision_batch.py).
- torch-eager: the PyTorch reference (transformers' Idefics2 vision tower + our resampler, fp32,
  eager attention) on the same preprocessed tensors: "sequential" one chunk per call, "batched" all
  chunks padded into one call with the patch mask (what the upstream remote code does).
- mtmd: llama.cpp's libmtmd on the raw RGB image with the bundle's mmproj (f16), its own slicing
  (the same grid for this image) and chunk-by-chunk encoding; its preprocessing is inside the figure.
Medians and min-max over ``runs`` after one warm-up on a small image. Quantized rows carry their feature
cosine against the fp32 bundle's features (vision_features.py); every row names its kernel (cpu_info.py).

PaliGemma-class models (kind "paligemma") take one fixed-size image: the same 1000x500 image is
resized to 224x224 (our ``prepare_image``, timed as preprocessing), one chunk, 256 image tokens.
- ours-*: only the bundle's vision part (``open_session`` + ``encode_chunks``, what the runtime runs),
  so the multi-GB decoder is not loaded; one call with the one image (reported as "batched").
- torch-eager: transformers' ``PaliGemmaModel.get_image_features`` (SigLIP tower + linear projector,
  fp32, eager attention) with the checkpoint's vision and projector weights; the text model is built
  with one layer and a small vocabulary, as it plays no part in the image features.
- mtmd: a skipped row: llama.cpp's mtmd has no PaliGemma projector (the GGUF bundle has no mmproj).

Tiled models (kinds "idefics3": SmolVLM, "internvl") take a 1024x768 image (the issue's TTFT image): SmolVLM-256M
cuts it into 4 x 3 tiles of 512 + the global image, InternVL3-1B into 4 x 3 tiles of 448 + the thumbnail
(13 chunks each; 64 / 256 tokens per chunk).
- ours-*: as for MiniCPM-V (``prepare_image`` timed as preprocessing, then ``encode_images``): "sequential"
  one tile per call, "batched" the runtime's default (up to max_batch tiles and 1024 patches per call: one
  real-size tile, so the two rows differ only by noise);
- torch-eager: transformers' own ``get_image_features`` (fp32, eager attention) on the same tiles, one per
  call and all in one call;
- mtmd: llama.cpp's libmtmd with the GGUF bundle's mmproj on the raw image (its own tiler; the same grid
  for this image), tile by tile.

LLaVA-class models (kind "llava": anyres tiles of one fixed size; at OneVision's settings the 1000x500 image
takes the 768x1152 pinpoint: the base tile + 2 x 3 tiles = 7 chunks of 729 rows, 4009 image tokens after
unpadding (40 x 81 rows) and newlines):
- ours-*: ``prepare_image`` (plan + tiles, timed as preprocessing) then ``encode_images`` (the runtime's
  default, "batched": 1024 patches per call, i.e. one 729-patch tile; one tile per call, "sequential") and the numpy packing (unpadding, pooling, newline rows),
  inside the timed figure; ``image_tokens`` is the plan's count.
- torch-eager: transformers' ``get_image_features`` on the same tiles with the image size ("batched": all tiles
  in one call, its own packing included); "sequential": one tile per call through the same tower + projector.
- mtmd: the bundle's mmproj (f16): its own tiling (overview + tiles, no unpadding or newline rows), so its
  ``image_tokens`` (every tile in full) differ from transformers' count; see families/llava/NOTES.md.
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
import vision_features  # noqa: E402

IMAGE_SIZE = (1000, 500)
TILED_IMAGE_SIZE = (1024, 768)  # the tiled models' image (the issue's TTFT image)
TILED = ("idefics3", "internvl")  # model kinds whose processor cuts fixed-size tiles
# model kind -> (table caption, plot caption) of the vision measurement; run_all.py runs vision for these kinds
IMAGE_DESC = {
    "idefics3": ("1024x768 image (4 x 3 tiles of 512 + the global image = 13 chunks, 64 tokens each = 832)",
                 "1024x768 image (13 tiles)"),
    "internvl": ("1024x768 image (4 x 3 tiles of 448 + the thumbnail = 13 chunks, 256 tokens each = 3328)",
                 "1024x768 image (13 tiles)"),
    "minicpmv": (f"{IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} image (overview + 2 slices = 3 chunks, 192 image tokens)",
                 f"{IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} image (3 chunks)"),
    "paligemma": (f"{IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} image resized to 224x224 (1 chunk, 256 image tokens)",
                  f"{IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} image at 224x224 (1 chunk)"),
    "llava": (f"{IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} image, anyres tiles (base + grid; unpadded, newline rows)",
              f"{IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} image (anyres tiles)"),
}
MTMD_NO_PALIGEMMA = "llama.cpp's mtmd has no PaliGemma projector (no mmproj for this family): not run"


def _image(model: str | None = None):
    from edgevlm.export.validate import test_image

    return test_image(*(TILED_IMAGE_SIZE if model and models.spec(model).kind in TILED else IMAGE_SIZE))


def _summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 1), "min": round(min(values), 1),
            "max": round(max(values), 1), "n": len(values)}


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def bench_ours(model: str, recipe: str, runs: int, threads: int, modes: tuple[str, ...]) -> dict[str, Any]:
    import edgevlm
    from edgevlm.runtime.images import pack_features, prepare_image

    reference = vision_features.reference(model) if recipe != "fp32" else None
    vlm = edgevlm.load(str(models.onnx_bundle(model, recipe)), threads=threads)
    be, image = vlm.backend, _image(model)
    default_batch = be.vision_info.max_batch
    be.encode_images(prepare_image(_image().resize((224, 224)), vlm.processor).inputs)  # warm-up, one small chunk
    out: dict[str, Any] = {}
    slicing = []
    prepared = None
    for _ in range(runs):
        t0 = time.perf_counter()
        prepared = prepare_image(image, vlm.processor)
        slicing.append((time.perf_counter() - t0) * 1e3)
    out["preprocessing_ms"] = _summary(slicing)
    out["chunks"] = int(prepared.inputs["pixel_values"].shape[0])

    def encode() -> np.ndarray:  # the vision part, then the feature rows in prompt order (packing: numpy)
        return pack_features(be.encode_images(prepared.inputs), vlm.processor, prepared.plan, vlm.tables)

    out["image_tokens"] = int(encode().shape[0])
    for mode in modes:
        be.vision_info.max_batch = 1 if mode == "sequential" else default_batch
        out[f"{mode}_ms"] = _summary([_timed(encode) for _ in range(runs)])
    if reference is not None:
        out.update(vision_features.cosine(be.encode_images(prepared.inputs), reference))
    out["kernel"] = vision_features.kernel(models.onnx_bundle(model, recipe))
    vlm.close()
    return out


def bench_ours_fixed(model: str, recipe: str, runs: int, threads: int) -> dict[str, Any]:
    """A fixed-size processor (PaliGemma): the bundle's vision part alone, as the runtime runs it."""
    from edgevlm.runtime.images import prepare_image

    reference = vision_features.reference(model) if recipe != "fp32" else None
    bundle = models.onnx_bundle(model, recipe)
    encode, cfg = vision_features.encoder(bundle, threads)
    image = _image()
    encode(prepare_image(image, cfg))  # warm-up (the same size: every image is resized to one size)
    slicing, prepared = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        prepared = prepare_image(image, cfg)
        slicing.append((time.perf_counter() - t0) * 1e3)
    features = encode(prepared)
    out: dict[str, Any] = {"preprocessing_ms": _summary(slicing), "chunks": prepared.n_chunks,
                           "image_tokens": int(features.shape[0] * features.shape[1])}
    out["batched_ms"] = _summary([_timed(lambda: encode(prepared)) for _ in range(runs)])
    if reference is not None:
        out.update(vision_features.cosine(features, reference))
    out["kernel"] = vision_features.kernel(bundle)
    return out


def _paligemma_vision_reference(ckpt: Path) -> Any:
    """transformers' PaliGemma model holding the checkpoint's vision tower and projector (fp32, eager);
    its text model has one layer and a small vocabulary (not used by get_image_features)."""
    from safetensors import safe_open
    from transformers import PaliGemmaConfig, PaliGemmaForConditionalGeneration

    from edgevlm.families.common.reference import read_config
    from edgevlm.families.common.hf_vlm import hub_to_module

    raw = read_config(ckpt)
    fields = {k: v for k, v in raw.items() if k not in ("architectures", "model_type", "transformers_version")}
    fields["text_config"] = {**raw["text_config"], "num_hidden_layers": 1, "vocab_size": 1024}
    config = PaliGemmaConfig(**fields)
    for c in (config, config.text_config, config.vision_config):
        c._attn_implementation = "eager"
    model = PaliGemmaForConditionalGeneration(config).float().eval()
    tensors = {}
    with safe_open(str(ckpt / "model.safetensors"), "pt") as f:
        for key in f.keys():
            if key.startswith(("vision_tower.", "multi_modal_projector.")):
                tensors[hub_to_module(key)] = f.get_tensor(key).float()
    result = model.load_state_dict(tensors, strict=False)
    missing = [k for k in result.missing_keys if "vision_tower" in k or "multi_modal_projector" in k]
    if missing or result.unexpected_keys:
        raise RuntimeError(f"vision weights do not fit: missing {missing[:3]}, unexpected {result.unexpected_keys[:3]}")
    return model


def bench_torch_fixed(model: str, runs: int, threads: int) -> dict[str, Any]:
    """PaliGemma: transformers' get_image_features on our preprocessed 224x224 pixels."""
    import torch

    from edgevlm.manifest import read_manifest
    from edgevlm.processing.config import ProcessorConfig
    from edgevlm.runtime.images import prepare_image

    torch.set_num_threads(threads)
    hf = _paligemma_vision_reference(models.checkpoint(model))
    cfg = ProcessorConfig.from_dict(read_manifest(models.onnx_bundle(model, "fp32"), verify=False).processor)
    pixels = torch.from_numpy(np.asarray(prepare_image(_image(), cfg).inputs["pixel_values"], np.float32))

    def encode() -> torch.Tensor:
        with torch.inference_mode():
            out = hf.model.get_image_features(pixels)
        return getattr(out, "pooler_output", out)

    features = encode()  # warm-up
    return {"chunks": int(pixels.shape[0]), "image_tokens": int(features.shape[0] * features.shape[1]),
            "batched_ms": _summary([_timed(encode) for _ in range(runs)])}


def bench_torch(model: str, runs: int, threads: int, modes: tuple[str, ...]) -> dict[str, Any]:
    import torch

    from edgevlm.families import load_reference
    from edgevlm.processing.config import ProcessorConfig
    from edgevlm.runtime.images import prepare_image

    torch.set_num_threads(threads)
    ref = load_reference(models.checkpoint(model))
    manifest = json.loads((models.onnx_bundle(model, "fp32") / "manifest.json").read_text())
    cfg = ProcessorConfig.from_dict(manifest["processor"])
    inputs = {k: torch.from_numpy(np.asarray(v)) for k, v in prepare_image(_image(), cfg).inputs.items()}
    pixels, mask, tgt = inputs["pixel_values"], inputs["patch_attention_mask"], inputs["tgt_sizes"]
    small = {k: torch.from_numpy(np.asarray(v)) for k, v in prepare_image(_image().resize((224, 224)), cfg).inputs.items()}

    def one(p: torch.Tensor, m: torch.Tensor, t: torch.Tensor) -> None:
        with torch.inference_mode():
            ref.image_features(p, m, t)

    def sequential() -> None:
        for i, (h, w) in enumerate(tgt.tolist()):
            n = h * w
            one(pixels[i:i + 1, :, :, : n * 14], mask[i:i + 1, :n], tgt[i:i + 1])  # [1, 3, 14, n*14]

    one(small["pixel_values"], small["patch_attention_mask"], small["tgt_sizes"])  # warm-up
    out: dict[str, Any] = {"chunks": len(tgt)}
    for mode in modes:
        fn = sequential if mode == "sequential" else (lambda: one(pixels, mask, tgt))
        out[f"{mode}_ms"] = _summary([_timed(fn) for _ in range(runs)])
    return out


def bench_torch_tiles(model: str, runs: int, threads: int) -> dict[str, Any]:
    """Tiled models: transformers' get_image_features (through our reference's parts) on our tiles."""
    import torch

    from edgevlm.families import load_reference
    from edgevlm.manifest import read_manifest
    from edgevlm.processing.config import ProcessorConfig
    from edgevlm.runtime.images import prepare_image

    torch.set_num_threads(threads)
    ref = load_reference(models.checkpoint(model))
    cfg = ProcessorConfig.from_dict(read_manifest(models.onnx_bundle(model, "fp32"), verify=False).processor)
    tiles = torch.from_numpy(np.asarray(prepare_image(_image(model), cfg).inputs["pixel_values"], np.float32))

    def encode(pixels: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return ref.image_features(pixels)  # [n, tokens, D]

    features = encode(tiles[:1])  # warm-up
    out: dict[str, Any] = {"chunks": int(tiles.shape[0]), "image_tokens": int(tiles.shape[0] * features.shape[1])}
    out["sequential_ms"] = _summary([_timed(lambda: [encode(tiles[i:i + 1]) for i in range(len(tiles))])
                                     for _ in range(runs)])
    out["batched_ms"] = _summary([_timed(lambda: encode(tiles)) for _ in range(runs)])
    return out


def bench_torch_anyres(model: str, runs: int, threads: int, modes: tuple[str, ...]) -> dict[str, Any]:
    """LLaVA: transformers' get_image_features (tower, projector, its own packing) on our tiles; "sequential"
    runs the tiles one per call through the same tower + projector (the reference's image_features)."""
    import torch

    from edgevlm.families import load_reference
    from edgevlm.manifest import read_manifest
    from edgevlm.processing.config import ProcessorConfig
    from edgevlm.runtime.images import prepare_image

    torch.set_num_threads(threads)
    ref = load_reference(models.checkpoint(model))
    cfg = ProcessorConfig.from_dict(read_manifest(models.onnx_bundle(model, "fp32"), verify=False).processor)
    pixels = torch.from_numpy(np.asarray(prepare_image(_image(), cfg).inputs["pixel_values"], np.float32))
    sizes = torch.tensor([[IMAGE_SIZE[1], IMAGE_SIZE[0]]])  # (height, width)

    def batched() -> Any:
        tiled = hasattr(ref.hf.config, "image_grid_pinpoints")  # NeXT / OneVision: [images, tiles, 3, S, S]
        with torch.inference_mode():
            out = ref.hf.model.get_image_features(pixel_values=pixels[None] if tiled else pixels,
                                                  **({"image_sizes": sizes} if tiled else {}))
        return getattr(out, "pooler_output", out)

    def sequential() -> None:
        with torch.inference_mode():
            for i in range(len(pixels)):
                ref.image_features(pixels[i:i + 1])

    rows = batched()  # warm-up, both paths
    with torch.inference_mode():
        ref.image_features(pixels[:1])
    out: dict[str, Any] = {"chunks": int(pixels.shape[0]), "image_tokens": int(sum(r.shape[0] for r in rows))}
    for mode in modes:
        out[f"{mode}_ms"] = _summary([_timed(batched if mode == "batched" else sequential) for _ in range(runs)])
    return out


def bench_mtmd(model: str, runs: int, threads: int) -> dict[str, Any]:
    from edgevlm.runtime.backends.llamacpp_mtmd import MtmdImageEncoder

    if models.spec(model).kind == "paligemma":
        return {"skipped": MTMD_NO_PALIGEMMA}

    bundle = models.gguf_bundle(model, "q4_0")
    if not (bundle / "mmproj.gguf").is_file():
        return {"skipped": "no mmproj in this bundle (llama.cpp has no projector for this family)"}
    enc = MtmdImageEncoder(bundle / "text.gguf", bundle / "mmproj.gguf", threads=threads)
    rgb = np.asarray(_image(model).convert("RGB"))
    enc.encode(np.asarray(_image(model).resize((224, 224)).convert("RGB")))  # warm-up
    chunks = enc.encode(rgb)
    import cpu_info

    out = {"chunks": len(chunks), "image_tokens": int(sum(len(c) for c in chunks)),
           "sequential_ms": _summary([_timed(lambda: enc.encode(rgb)) for _ in range(runs)]),
           "kernel": f"ggml (clip.cpp, f16 weights): {cpu_info.llamacpp_system_info()}"}
    enc.close()
    return out


def _fixed(model: str) -> bool:
    """A fixed-size image processor (PaliGemma): one chunk per image, no slicing."""
    return models.spec(model).kind == "paligemma"


def _ours(recipe: str, modes: tuple[str, ...]) -> Callable[[str, int, int], dict[str, Any]]:
    def run(m: str, r: int, t: int) -> dict[str, Any]:
        return bench_ours_fixed(m, recipe, r, t) if _fixed(m) else bench_ours(m, recipe, r, t, modes)
    return run


def _torch(m: str, r: int, t: int) -> dict[str, Any]:
    import cpu_info

    if models.spec(m).kind in TILED:
        out = bench_torch_tiles(m, r, t)
    elif models.spec(m).kind == "llava":
        out = bench_torch_anyres(m, r, t, ("sequential", "batched"))
    else:
        out = bench_torch_fixed(m, r, t) if _fixed(m) else bench_torch(m, r, t, ("sequential", "batched"))
    return {**out, "kernel": cpu_info.torch_kernel()}


ENGINES = {
    "ours-onnx-fp32": ("edgevlm ONNX fp32", _ours("fp32", ("sequential", "batched"))),
    "ours-onnx-int8": ("edgevlm ONNX int8", _ours("int8", ("batched",))),
    "ours-onnx-w4": ("edgevlm ONNX w4", _ours("w4", ("batched",))),
    "torch-eager": ("PyTorch eager fp32", _torch),
    "mtmd": ("llama.cpp mtmd (mmproj f16)", bench_mtmd),
}


def run_engine(name: str, model: str, runs: int = 2, threads: int = 2) -> dict[str, Any]:
    from compare_text import peak_rss_mb

    label, fn = ENGINES[name]
    models.log(f"{model} vision {name}: {runs} runs")
    result = {"engine": name, "label": label, "model": model, "image": list(_image(model).size), "threads": threads,
              "runs": runs, **fn(model, runs, threads)}
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return result


def main() -> None:
    engine_main(__doc__, ENGINES, run_engine, runs=2)


if __name__ == "__main__":
    main()
