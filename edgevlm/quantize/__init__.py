"""``quantize(bundle, out, recipe)``: a quantized copy of a bundle (never in place), per component.

The format's own tools do the work: onnxruntime's quantizers for ONNX, llama.cpp's
``llama_model_quantize`` for GGUF, coremltools.optimize for Core ML. The manifest records per part
what was done (method, bits, block size, sizes before and after) and, with ``report=True``, the
accuracy report against the source bundle.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

from ..errors import EdgeVLMError
from ..manifest import BundleWriter, Manifest, read_manifest
from . import report as _report_module  # noqa: F401  (makes edgevlm.quantize.report(a, b) available)
from .recipes import RECIPES, plan
from .report import report as _accuracy_report


def _stderr_progress(message: str) -> None:
    print(f"[edgevlm] {message}", file=sys.stderr, flush=True)


def quantize(bundle: str | Path, out: str | Path, recipe: str = "w4", overrides: dict[str, str] | None = None,
             block_size: int = 32, symmetric: bool = False, report: bool = False, calibration: str | None = None,
             overwrite: bool = False, progress: Callable[[str], None] | None = _stderr_progress,
             head_bits: int = 8) -> Manifest:
    """``head_bits`` (ONNX w4): bits of the output head (the logits MatMul). 8 keeps Gemma 3 270M's top-1
    agreement at 0.727 instead of 0.661; 4 reads half the head's bytes per token (docs/quantization.md)."""
    if head_bits not in (4, 8):
        raise EdgeVLMError(f"--head-bits must be 4 or 8, not {head_bits}")
    src = Path(bundle)
    if Path(out).absolute() == src.absolute():
        raise EdgeVLMError("quantize writes a new bundle and never changes its input: choose another -o directory")
    say = progress or (lambda message: None)
    manifest = read_manifest(src)
    started = time.perf_counter()
    with BundleWriter(out, overwrite=overwrite) as writer:
        part_files = {p.file for p in manifest.parts.values()}
        packages = tuple(p.extra["package"] + "/" for p in manifest.parts.values() if p.extra.get("package"))
        for rel in manifest.files:  # tokenizer and anything else the parts do not own
            if rel not in part_files and not rel.endswith(".data") and not rel.startswith(packages):
                shutil.copy(src / rel, writer.path(rel))
        if manifest.format == "onnx":
            records = _quantize_onnx(src, writer.tmp, manifest, recipe, overrides, block_size, symmetric,
                                     calibration, say, head_bits)
        elif manifest.format == "gguf":
            from .gguf import quantize_gguf_bundle

            records = quantize_gguf_bundle(src, writer.tmp, manifest, recipe, overrides or {}, say)
        else:
            from .coreml import quantize_coreml_bundle

            records = quantize_coreml_bundle(src, writer.tmp, manifest, recipe, overrides or {}, block_size, say)
        new = Manifest.from_dict({**manifest.to_dict(), "files": manifest.files, "validation": {}})
        new.quantization = {**records, "recipe": recipe, "source_bundle": src.name}
        new.source = {**manifest.source, "quantized_from": src.name}
        new.validation = {"source": manifest.validation}
        if report:
            say("accuracy report against the source bundle")
            table = _accuracy_report(src, writer.tmp, candidate_manifest=new, progress=say)
            new.quantization["report"] = table
            say(format_report(table))
        new = writer.commit(new)
    say(f"wrote {out} (recipe {recipe}) in {time.perf_counter() - started:.1f} s")
    return new


def _quantize_onnx(src: Path, dst: Path, manifest: Manifest, recipe: str, overrides: dict[str, str] | None,
                   block_size: int, symmetric: bool, calibration: str | None,
                   say: Callable[[str], None], head_bits: int = 8) -> dict[str, Any]:
    from .onnx import quantize_onnx_part

    methods = plan(recipe, list(manifest.parts), overrides)
    if calibration is not None:
        from .qdq import Calibration

        calibration = Calibration(src, calibration)
    records = {}
    for name, part in manifest.parts.items():
        say(f"quantizing {name} ({part.file}): {methods[name]}")
        records[name] = quantize_onnx_part(src / part.file, dst / part.file, methods[name], block_size, symmetric,
                                           calibration, name, head_bits=head_bits)
        part.dtype = methods[name] if methods[name] != "none" else part.dtype
        data = dst / (part.file + ".data")  # a quantized part may fit in one file where its source did not
        part.extra["external_data"] = data.name if data.exists() else None
        if methods[name] == "fp16":
            part.extra["ort_graph_optimization"] = "extended"  # see runtime/backends/onnxruntime.py
    return records


def format_report(table: dict[str, Any]) -> str:
    rows = [("top-1 agreement", f"{table['top1_agreement']:.4f}"), ("mean KL (nats)", f"{table['mean_kl']:.5f}"),
            ("positions", str(table["positions"])),
            ("identical greedy prefix", f"{table['greedy_identical_prefix_mean']:.1f} / {table['greedy_tokens']}")]
    if table.get("vision_cosine_min") is not None:
        rows.append(("vision-feature cosine (min)", f"{table['vision_cosine_min']:.6f}"))
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"  {name:<{width}}  {value}" for name, value in rows)


__all__ = ["quantize", "RECIPES", "format_report"]

from .._callable_module import make_callable  # noqa: E402

make_callable(__name__, "quantize")
