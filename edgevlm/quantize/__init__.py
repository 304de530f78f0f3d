"""``quantize(bundle, out, recipe)``: a quantized copy of a bundle (never in place), per component.

The format's own tools do the work: onnxruntime's quantizers for ONNX, llama.cpp's
``llama_model_quantize`` for GGUF, coremltools.optimize for Core ML. The manifest records per part
what was done (method, bits, block size, sizes before and after) and, with ``report=True``, the
accuracy report against the source bundle.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any, Callable

from ..manifest import BundleWriter, Manifest, read_manifest
from . import report as _report_module  # noqa: F401  (makes edgevlm.quantize.report(a, b) available)
from .recipes import RECIPES
from .report import report as _accuracy_report


TERMINAL = "terminal"  # default progress: a live line per stage on a terminal, plain lines otherwise


def quantize(bundle: str | Path, out: str | Path, recipe: str = "w4", overrides: dict[str, str] | None = None,
             block_size: int | None = None, symmetric: bool | None = None, report: bool = False,
             calibration: str | None = None, overwrite: bool = False,
             progress: Callable[[str], None] | str | None = TERMINAL, head_bits: int | None = None) -> Manifest:
    """A quantized copy of ``bundle`` in ``out``. The options a format takes are in edgevlm/formats.py:
    ``block_size``, ``symmetric``, ``head_bits`` (ONNX w4: bits of the output head, 8 keeps Gemma 3 270M's
    top-1 agreement at 0.727 instead of 0.661; 4 reads half the head's bytes per token,
    docs/quantization.md), ``calibration`` (ONNX qdq8/qdq16); an option a format does not take is an error.
    ``overrides``: part name -> method (GGUF parts: text, mmproj). ``progress`` as for ``export``."""
    from ..progress import Progress, quiet_third_party

    shown = Progress() if progress == TERMINAL else None
    try:
        with quiet_third_party():
            return _quantize(bundle, out, recipe, overrides, block_size, symmetric, report, calibration, overwrite,
                             shown or progress, head_bits)
    finally:
        if shown is not None:
            shown.close()


def _quantize(bundle: str | Path, out: str | Path, recipe: str, overrides: dict[str, str] | None,
              block_size: int | None, symmetric: bool | None, report: bool, calibration: str | None, overwrite: bool,
              progress: Callable[[str], None] | None, head_bits: int | None) -> Manifest:
    from ..formats import check_options, get_format, resolve
    from .job import QuantizeJob

    src = Path(bundle)
    say = progress or (lambda message: None)
    manifest = read_manifest(src)
    fmt = get_format(manifest.format)
    options = check_options(fmt, {"block_size": block_size, "symmetric": symmetric or None,
                                  "head_bits": head_bits, "calibration": calibration}, "quantize")
    started = time.perf_counter()
    with BundleWriter(out, overwrite=overwrite, source=src) as writer:
        owned = {p.file for p in manifest.parts.values()} | {d for p in manifest.parts.values() for d in p.data_files}
        for rel in manifest.files:  # tokenizer and anything else the parts do not own
            if rel not in owned and not any(rel.startswith(d.rstrip("/") + "/") for d in owned):
                shutil.copy(src / rel, writer.path(rel))
        # Data parts (arrays, format "npy") are copied as they are; the format's quantizer sees model parts only.
        data_parts = manifest.data_parts
        for name, part in data_parts.items():
            del manifest.parts[name]
            shutil.copy(src / part.file, writer.path(part.file))
        job = QuantizeJob(src, writer.tmp, manifest, recipe, dict(overrides or {}), options, say)
        records = resolve(fmt.quantizer)(job)
        manifest.parts.update(data_parts)
        records.update({name: {"method": "none", "dtype": part.dtype} for name, part in data_parts.items()})
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
