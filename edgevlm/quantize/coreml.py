"""Core ML part quantization with coremltools.optimize (weights only; inputs, outputs and states unchanged).

Methods (per part, chosen by the recipe table in recipes.py or by COREML_RECIPES below):
- ``int8``: linear symmetric int8, one scale per output channel (``constexpr_blockwise_shift_scale``);
- ``w8`` / ``w4``: linear symmetric int8 / int4, one scale per block of ``block_size`` input values
  along each output channel (iOS 18 per-block quantization, ``constexpr_blockwise_shift_scale``);
- ``palette4`` / ``palette6``: k-means palettization, a 16- / 64-entry look-up table per group of 16
  output channels (``constexpr_lut_to_dense``); weights whose channel count is not a multiple of 16
  get one table for the whole tensor;
- ``none`` / ``fp16``: copy (the packages are already fp16 or fp32 as exported).
The runtime is the same for every method: Core ML decompresses the weights on load or on the fly.
A multifunction package (the decoder's decode + prefill) is split into its functions, each quantized,
then combined again: coremltools.optimize refuses multifunction models, and save_multifunction
stores the identical quantized weights of the functions once.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

from ..errors import EdgeVLMError

COREML_METHODS = ("none", "fp16", "int8", "w8", "w4", "palette4", "palette6")
PALETTE_GROUP = 16
# Recipes only Core ML has; the shared ones (int8, w4, mixed, ...) live in recipes.RECIPES.
# "mixed" there (decoder w4, vision int8, embedding int8) is the Core ML rule too.
COREML_RECIPES: dict[str, dict[str, str]] = {
    "palette4": {"vision": "palette6", "embedding": "palette6", "decoder": "palette4"},
    "palette6": {"vision": "palette6", "embedding": "palette6", "decoder": "palette6"},
}
# Methods of shared recipes that have no Core ML counterpart.
_UNSUPPORTED = {"qdq8": "static QDQ quantization is for ONNX NPU providers",
                "qdq16": "static QDQ quantization is for ONNX NPU providers"}


def _weight_consts(spec: Any, function: str | None = None) -> dict[str, list[int]]:
    """name -> shape of every const tensor of rank >= 2 in an ML program (the weights), in every
    function or only in ``function``."""
    from ..export.coreml.plumbing import mil_ops

    found: dict[str, list[int]] = {}
    for op in mil_ops(spec, function):
        if op.type == "const" and op.outputs:
            shape = [int(d.constant.size) for d in op.outputs[0].type.tensorType.dimensions]
            if len(shape) >= 2:
                found[op.outputs[0].name] = shape
    return found


def _config(method: str, block_size: int, spec: Any) -> Any:
    import coremltools.optimize.coreml as cto

    if method == "int8":
        op = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel")
    elif method in ("w8", "w4"):
        op = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8" if method == "w8" else "int4",
                                         granularity="per_block", block_size=block_size)
    else:
        nbits = int(method[len("palette"):])
        op = cto.OpPalettizerConfig(mode="kmeans", nbits=nbits, granularity="per_grouped_channel",
                                    group_size=PALETTE_GROUP)
        whole = cto.OpPalettizerConfig(mode="kmeans", nbits=nbits, granularity="per_tensor")
        # Grouped tables need the output-channel count to be a multiple of the group size.
        odd = {name: whole for name, shape in _weight_consts(spec).items() if shape[0] % PALETTE_GROUP}
        return cto.OptimizationConfig(global_config=op, op_name_configs=odd)
    return cto.OptimizationConfig(global_config=op)


def _weights_bytes(path: Path) -> int:
    """Bytes of the package's weight file(s): what quantization changes (the program text does not shrink)."""
    return sum(f.stat().st_size for f in Path(path).rglob("weights/*") if f.is_file())


def _quantize_single(src: Path, dst: Path, recipe: str, block_size: int) -> dict[str, Any]:
    """Quantize one single-function package; returns the method's fields of the manifest record."""
    import coremltools as ct
    import coremltools.optimize.coreml as cto

    from ..export.coreml.plumbing import own_temp_packages

    model = ct.models.MLModel(str(src), skip_model_load=True)  # no Core ML framework needed
    config = _config(recipe, block_size, model.get_spec())
    with own_temp_packages(dst.parent):
        if recipe.startswith("palette"):
            out = cto.palettize_weights(model, config)
            fields = dict(bits=int(recipe[len("palette"):]), mode="kmeans", granularity="per_grouped_channel",
                          group_size=PALETTE_GROUP)
        else:
            out = cto.linear_quantize_weights(model, config)
            fields = dict(bits=4 if recipe == "w4" else 8, mode="linear_symmetric",
                          granularity="per_channel" if recipe == "int8" else "per_block")
            if recipe != "int8":
                fields["block_size"] = block_size
        out.save(str(dst))
    return fields


def quantize_coreml_part(src_pkg: str | Path, dst_pkg: str | Path, recipe: str, block_size: int = 32
                         ) -> dict[str, Any]:
    """Write ``dst_pkg`` (a .mlpackage) from ``src_pkg`` with method ``recipe``; return the manifest record."""
    import coremltools as ct

    from ..export.coreml.plumbing import (function_names, load_spec, mil_op_counts, package_bytes, save_functions,
                                        split_functions)

    src, dst = Path(src_pkg), Path(dst_pkg)
    if recipe not in COREML_METHODS:
        raise EdgeVLMError(f"unknown Core ML quantization method {recipe!r}; choose one of {', '.join(COREML_METHODS)}")
    if dst.exists():
        shutil.rmtree(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"method": recipe, "tool": f"coremltools {ct.__version__} optimize.coreml"}
    if recipe in ("none", "fp16"):
        shutil.copytree(src, dst)
    elif function_names(src) != ["main"]:
        # coremltools.optimize refuses multifunction models: quantize each function on its own, then
        # combine them again (save_multifunction shares the identical quantized weights).
        with tempfile.TemporaryDirectory(dir=dst.parent, prefix=".quantize-") as tmp:
            singles, default = split_functions(src, Path(tmp) / "src")
            done = {name: Path(tmp) / f"{name}.mlpackage" for name in singles}
            for name, single in singles.items():
                record.update(_quantize_single(single, done[name], recipe, block_size))
            save_functions(done, dst, default)
        record["functions"] = list(singles)
    else:
        record.update(_quantize_single(src, dst, recipe, block_size))
    # Per function (the default one of a multifunction package): every function holds the same ops.
    ops = mil_op_counts(dst, load_spec(dst).description.defaultFunctionName or None)
    before, after = package_bytes(src), package_bytes(dst)
    record.update(
        size_before=before, size_after=after, ratio=round(after / max(before, 1), 4),
        weights_ratio=round(_weights_bytes(dst) / max(_weights_bytes(src), 1), 4),
        quantized_ops={k: v for k, v in ops.items() if k.startswith("constexpr_")})
    return record


def plan_coreml(recipe: str, parts: list[str], overrides: dict[str, str] | None = None) -> dict[str, str]:
    """part name -> Core ML method: the shared recipe table, or COREML_RECIPES, then per-part overrides."""
    from .recipes import RECIPES, plan

    if recipe in COREML_RECIPES:
        table = {part: COREML_RECIPES[recipe].get(part, "none") for part in parts}
        for part, method in (overrides or {}).items():
            if part not in table:
                raise EdgeVLMError(f"--{part}: this bundle has no {part} part (it has {', '.join(parts)})")
            table[part] = method
    elif recipe in RECIPES:
        table = plan(recipe, parts, overrides, methods=COREML_METHODS + tuple(_UNSUPPORTED) + ("rows8",))
        # ONNX's per-row int8 embedding is what Core ML's per-channel int8 already does for a [V, D] table
        table = {part: "int8" if method == "rows8" else method for part, method in table.items()}
    else:
        known = ", ".join(list(RECIPES) + list(COREML_RECIPES))
        raise EdgeVLMError(f"unknown recipe {recipe!r}; choose one of {known}")
    for part, method in table.items():
        if method in _UNSUPPORTED:
            raise EdgeVLMError(f"{part}: {method} is not available for Core ML bundles ({_UNSUPPORTED[method]}); "
                               f"choose one of {', '.join(COREML_METHODS)}")
        if method not in COREML_METHODS:
            raise EdgeVLMError(f"{part}: unknown Core ML method {method!r}; choose one of {', '.join(COREML_METHODS)}")
    return table


def quantize_bundle(job: Any) -> dict[str, Any]:
    """The format's quantizer (edgevlm/formats.py): a QuantizeJob (quantize/job.py) -> part -> record."""
    return quantize_coreml_bundle(job.src, job.dst, job.manifest, job.recipe, job.overrides,
                                  job.options.get("block_size", 32), job.say)


def quantize_coreml_bundle(src: Path, dst: Path, manifest: Any, recipe: str, overrides: dict[str, str],
                           block_size: int, say: Callable[[str], None]) -> dict[str, Any]:
    """Quantize every part package of a Core ML bundle from ``src`` into ``dst``; returns part -> record.

    Sets each Part's dtype to its method. Package directories are written whole (any copy of their
    files already under ``dst`` is replaced).
    """
    methods = plan_coreml(recipe, list(manifest.parts), overrides)
    records = {}
    for name, part in manifest.parts.items():
        package = part.data_files[0] if part.data_files else str(Path(part.file).parent)
        say(f"quantizing {name} ({package}): {methods[name]}")
        records[name] = quantize_coreml_part(src / package, dst / package, methods[name], block_size)
        if methods[name] not in ("none", "fp16"):
            part.dtype = methods[name]
    return records
