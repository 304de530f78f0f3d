"""Preprocessing time: edgevlm.processing vs the reference processors, side by side.

    python benchmarks/bench_preprocessing.py [--runs 7] [--minicpmv-ref /tmp/ref26]

A 4032x3024 photo-sized RGB image (12 MP; 9 slices, grid [3, 3] for MiniCPM-V) is preprocessed
into vision-tower input by each implementation; the table shows the median of ``--runs`` timed
runs after one warm-up. References, used when importable (rows are skipped otherwise):

* MiniCPM-V 2.6 remote-code ``MiniCPMVImageProcessor.preprocess`` from a directory holding
  ``image_processing_minicpmv.py`` (``--minicpmv-ref``; not part of this repository);
* transformers' native ``MiniCPMV4_6ImageProcessorPil`` (same slicing family, 56-aligned sizes),
  compared with our pipeline configured the same way;
* transformers' ``SiglipImageProcessorPil`` (PaliGemma 224/448) and ``Gemma3ImageProcessorPil`` (896).

Results go to ``benchmarks/results/preprocessing.json`` together with the machine description.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import PIL
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgevlm.processing.config import ProcessorConfig  # noqa: E402
from edgevlm.processing.preprocess import preprocess_fixed, preprocess_slices  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "preprocessing.json"


def photo_like(width: int, height: int) -> Image.Image:
    """Smooth gradients plus mild noise: resize cost does not depend on content, but keep it photo-like."""
    rng = np.random.default_rng(0)
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]  # [h, 1]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]  # [1, w]
    base = np.stack(np.broadcast_arrays(180 * x + 40 * y, 120 * y + 60 + 0 * x, 200 * (1 - x) * y + 30), axis=-1)  # [h, w, 3]
    noise = rng.normal(0, 6, size=(height, width, 1)).astype(np.float32)  # [h, w, 1]
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")


def median_ms(fn, runs: int) -> float:
    fn()  # warm-up (imports, lookup tables, thread pool)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def load_minicpmv_reference(directory: str):
    path = Path(directory) / "image_processing_minicpmv.py"
    if not path.exists():
        return None
    try:
        spec = importlib.util.spec_from_file_location("minicpmv_reference_image_processing", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.MiniCPMVImageProcessor(version=2.6)
    except Exception as exc:  # a reference that does not import is reported, not fatal
        print(f"MiniCPM-V reference not usable: {exc}", file=sys.stderr)
        return None


def transformers_processor(module_name: str, class_name: str, **kwargs):
    try:
        module = importlib.import_module(module_name)
        return getattr(module, class_name)(**kwargs)
    except Exception:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--minicpmv-ref", default=os.environ.get("EDGEVLM_MINICPMV_REF", "/tmp/ref26"))
    parser.add_argument("--width", type=int, default=4032)
    parser.add_argument("--height", type=int, default=3024)
    args = parser.parse_args()

    image = photo_like(args.width, args.height)
    rows = []

    def row(name, ours_fn, ref_name, ref_fn, note=""):
        ours_ms = median_ms(ours_fn, args.runs)
        ref_ms = median_ms(ref_fn, args.runs) if ref_fn is not None else None
        rows.append({"case": name, "edgevlm_ms": round(ours_ms, 2), "reference": ref_name,
                     "reference_ms": None if ref_ms is None else round(ref_ms, 2),
                     "ratio": None if ref_ms is None else round(ours_ms / ref_ms, 3), "note": note})

    slice_cfg = ProcessorConfig(max_slice_nums=9)
    grid = preprocess_slices(image, slice_cfg).grid
    reference = load_minicpmv_reference(args.minicpmv_ref)
    row(f"MiniCPM-V 2.6 slices (grid {grid})", lambda: preprocess_slices(image, slice_cfg),
        "remote-code MiniCPMVImageProcessor", (lambda: reference.preprocess(image, max_slice_nums=9)) if reference else None,
        "" if reference else f"reference not found in {args.minicpmv_ref}")

    native = transformers_processor("transformers.models.minicpmv4_6.image_processing_pil_minicpmv4_6",
                                    "MiniCPMV4_6ImageProcessorPil", downsample_mode="16x")
    cfg_46 = ProcessorConfig(max_slice_nums=9, resize_align=56)
    row("MiniCPM-V 4.6 slices (56-aligned)", lambda: preprocess_slices(image, cfg_46),
        "transformers MiniCPMV4_6ImageProcessorPil", (lambda: native(image, return_tensors="np")) if native else None)

    for label, size, resample, cls in (("PaliGemma 224", 224, "bicubic", "SiglipImageProcessorPil"),
                                       ("PaliGemma 448", 448, "bicubic", "SiglipImageProcessorPil"),
                                       ("Gemma 3 896", 896, "bilinear", "Gemma3ImageProcessorPil")):
        cfg = ProcessorConfig(kind="fixed", image_size=size, resample=resample)
        module = "transformers.models." + ("siglip.image_processing_pil_siglip" if "Siglip" in cls
                                           else "gemma3.image_processing_pil_gemma3")
        ref = transformers_processor(module, cls, size={"height": size, "width": size},
                                     image_mean=[0.5] * 3, image_std=[0.5] * 3, resample=3 if resample == "bicubic" else 2)
        row(label, lambda cfg=cfg: preprocess_fixed(image, cfg), f"transformers {cls}",
            (lambda ref=ref: ref(image, return_tensors="np")) if ref else None)

    machine = {"platform": platform.platform(), "machine": platform.machine(), "processor": platform.processor(),
               "cpu_count": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
               "pillow": PIL.__version__}
    try:
        import transformers

        machine["transformers"] = transformers.__version__
    except ImportError:
        pass
    result = {"image": [args.width, args.height], "runs": args.runs, "statistic": "median", "machine": machine,
              "rows": rows}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")

    print(f"{args.width}x{args.height} image, median of {args.runs} runs, {machine['cpu_count']} CPUs")
    print(f"{'case':<38} {'edgevlm ms':>11} {'reference ms':>13} {'ratio':>6}  reference")
    for r in rows:
        ref_ms = "-" if r["reference_ms"] is None else f"{r['reference_ms']:.1f}"
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        print(f"{r['case']:<38} {r['edgevlm_ms']:>11.1f} {ref_ms:>13} {ratio:>6}  {r['reference']} {r['note']}")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
