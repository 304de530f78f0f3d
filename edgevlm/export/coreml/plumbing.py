"""Shared plumbing for the Core ML part exporters: trace + ct.convert, spec read-back, package files.

Every Core ML part is an ML program (``.mlpackage`` directory) converted from a small traced
``nn.Module`` whose forward takes exactly the model inputs. The Part returned describes inputs,
outputs and states as read back from the saved package's spec (names, dtypes, fixed / ranged /
enumerated shapes), so the runtime never has to guess them and the tests check the file, not intent.

An ``.mlpackage`` is a directory, while the manifest's file list records regular files, so a Part's
``file`` names the package's own ``Manifest.json`` and ``extra["package"]`` names the directory.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

# Stateful models (ct.StateType) need the iOS 18 / macOS 15 Core ML runtime; the per-block int4
# and grouped-channel palettization of edgevlm.quantize.coreml need the same opset.
DEPLOYMENT_TARGET = "iOS18"
COMPUTE_UNITS = ("cpu_and_ne", "cpu_and_gpu", "cpu_only", "all")
DEFAULT_COMPUTE_UNITS = "cpu_and_ne"
DTYPES = ("fp16", "fp32")
# Additive mask value: finite in float16, so "0 * mask" or "score + mask" never makes NaN or -inf.
MASK_VALUE = float(np.finfo(np.float16).min)


def ct():
    """coremltools, imported lazily (it is an optional dependency: pip install 'edgevlm[coreml]')."""
    try:
        import coremltools
    except ImportError as exc:
        from ...errors import EdgeVLMError

        raise EdgeVLMError(f"Core ML export needs coremltools ({exc}). Install it: pip install 'edgevlm[coreml]'."
                           ) from None
    return coremltools


def package_manifest(package: str) -> str:
    """The regular file inside a package that a Part's ``file`` names (the package's own Manifest.json)."""
    return f"{package}/Manifest.json"


def _patch_scalar_cast() -> None:
    """coremltools 9.0 folds ``int(size_tensor)`` with ``int(np.array([n]))``, which numpy >= 2.3 refuses
    ("only 0-dimensional arrays can be converted"); fold such length-1 constants through ``.item()``."""
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.frontend.torch import ops

    if getattr(ops._cast, "_edgevlm_patched", False):
        return
    original = ops._cast

    def cast(context, node, dtype, dtype_name):
        x = ops._get_inputs(context, node, expected=1)[0]
        if x.can_be_folded_to_const() and np.ndim(x.val) > 0 and np.size(x.val) == 1:
            context.add(mb.const(val=dtype(np.asarray(x.val).reshape(-1)[0].item()), name=node.name), node.name)
            return
        original(context, node, dtype, dtype_name)

    cast._edgevlm_patched = True
    ops._cast = cast


def convert(module: torch.nn.Module, example: tuple, inputs: list, outputs: list, path: Path, dtype: str,
            states: list | None = None) -> Any:
    """Trace ``module(*example)``, convert it to an ML program and save it at ``path`` (a .mlpackage).

    The model is not loaded after conversion (``skip_model_load``): that needs the Core ML framework,
    which only macOS has; conversion and saving work everywhere.
    """
    coremltools = ct()
    _patch_scalar_cast()
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {DTYPES}")
    module = module.eval()
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    with torch.no_grad(), warnings.catch_warnings(), own_temp_packages(path.parent):
        # The tracer warns about Python-level shape checks inside transformers modules; the tests
        # compare the traced module's numbers with the reference.
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, example, check_trace=False)
        precision = coremltools.precision.FLOAT16 if dtype == "fp16" else coremltools.precision.FLOAT32
        model = coremltools.convert(
            traced, inputs=inputs, outputs=outputs, states=states or None, convert_to="mlprogram",
            compute_precision=precision,
            minimum_deployment_target=getattr(coremltools.target, DEPLOYMENT_TARGET),
            skip_model_load=True)
        model.save(str(path))
    return model


@contextlib.contextmanager
def own_temp_packages(parent: str | Path):
    """Point the temp folder at a private one under ``parent`` (the bundle being written) while
    coremltools runs, and delete it afterwards.

    coremltools writes every converted, optimized or combined model as a temporary .mlpackage (all its
    weights) in the system temp folder and removes it only when the process exits; one export or
    quantize run held several copies, and killed runs left them behind (7 GB found in /tmp here)."""
    with tempfile.TemporaryDirectory(dir=parent, prefix=".coremltools-") as private:
        saved, tempfile.tempdir = tempfile.tempdir, private
        try:
            yield
        finally:
            tempfile.tempdir = saved


def _dtype_name(array_type: Any) -> str:
    from coremltools.proto import FeatureTypes_pb2

    name = FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name(array_type.dataType)
    return {"FLOAT32": "float32", "FLOAT16": "float16", "INT32": "int32", "DOUBLE": "float64"}.get(name, name.lower())


def _array_spec(array_type: Any) -> dict[str, Any]:
    """{"dtype", "shape"} plus "enumerated" shapes or per-dim "range" [lo, hi] (hi -1 = unbounded)."""
    out: dict[str, Any] = {"dtype": _dtype_name(array_type), "shape": [int(d) for d in array_type.shape]}
    kind = array_type.WhichOneof("ShapeFlexibility")
    if kind == "enumeratedShapes":
        out["enumerated"] = [[int(d) for d in s.shape] for s in array_type.enumeratedShapes.shapes]
    elif kind == "shapeRange":
        out["range"] = [[int(r.lowerBound), int(r.upperBound)] for r in array_type.shapeRange.sizeRanges]
    return out


def io_spec(model_or_path: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(inputs, outputs, states) of a saved package (or an MLModel) as read from its spec; for a
    multifunction package, those of its default function."""
    return function_io_spec(model_or_path, None)


def function_io_spec(model_or_path: Any, function: str | None) -> tuple[dict[str, Any], dict[str, Any],
                                                                         dict[str, Any]]:
    """(inputs, outputs, states) of one function (None = the default one) of a saved package."""
    desc = load_spec(model_or_path).description
    if desc.functions:  # multifunction: the top-level description is empty, each function has its own
        name = function or desc.defaultFunctionName
        matches = [f for f in desc.functions if f.name == name]
        if not matches:
            raise KeyError(f"no function {name!r}; the package has {[f.name for f in desc.functions]}")
        desc = matches[0]
    elif function not in (None, "main"):
        raise KeyError(f"no function {function!r} in a single-function package")
    inputs = {f.name: _array_spec(f.type.multiArrayType) for f in desc.input}
    outputs = {f.name: _array_spec(f.type.multiArrayType) for f in desc.output}
    states = {f.name: _array_spec(f.type.stateType.arrayType) for f in desc.state}
    return inputs, outputs, states


def function_names(model_or_path: Any) -> list[str]:
    """The functions of a saved package (["main"] for a single-function one)."""
    desc = load_spec(model_or_path).description
    return [f.name for f in desc.functions] or ["main"]


def save_functions(singles: dict[str, Path], path: Path, default: str) -> None:
    """Combine single-function packages {function name: path} into one multifunction package at ``path``.
    save_multifunction deduplicates identical weights across functions, so they are stored once."""
    coremltools = ct()
    desc = coremltools.utils.MultiFunctionDescriptor()
    for name, single in singles.items():
        desc.add_function(str(single), src_function_name="main", target_function_name=name)
    desc.default_function_name = default
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    with own_temp_packages(path.parent):
        coremltools.utils.save_multifunction(desc, str(path))


def split_functions(path: Path, out_dir: Path) -> tuple[dict[str, Path], str]:
    """Write each function of a multifunction package as a single-function package under ``out_dir``;
    returns ({function name: package path}, default function name).

    coremltools.optimize refuses multifunction models (coremltools 9: "not supported for a
    multifunction model"), so quantization works on the single functions and ``save_functions``
    combines the results again. coremltools has no public call for this split: it uses the same
    internal MIL loader and writer that ``ct.utils.save_multifunction`` itself uses.
    """
    coremltools = ct()
    from coremltools.converters.mil.converter import mil_convert
    from coremltools.converters.mil.frontend.milproto.load import load as load_milproto
    from coremltools.converters.mil.mil import Program
    from coremltools.proto import Model_pb2

    spec = load_spec(path)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    weights = Path(path) / "Data" / "com.apple.CoreML" / "weights"
    program = load_milproto(spec, spec.specificationVersion, str(weights))
    singles = {}
    for desc in spec.description.functions:
        single = Program()
        single.add_function("main", program.functions[desc.name])
        single.skip_all_passes = True  # the functions were optimized when converted
        singles[desc.name] = Path(out_dir) / f"{desc.name}.mlpackage"
        with own_temp_packages(out_dir):
            model = mil_convert(single, convert_to="mlprogram", convert_from="milinternal",
                                specification_version=spec.specificationVersion,
                                compute_units=coremltools.ComputeUnit.CPU_ONLY, skip_model_load=True,
                                model_description=Model_pb2.ModelDescription(input=desc.input, output=desc.output,
                                                                             state=desc.state))
            model.save(str(singles[desc.name]))
    return singles, spec.description.defaultFunctionName


def load_spec(model_or_path: Any) -> Any:
    if hasattr(model_or_path, "get_spec"):
        return model_or_path.get_spec()
    coremltools = ct()
    return coremltools.utils.load_spec(str(model_or_path))


def mil_ops(spec: Any, function: str | None = None) -> Iterator[Any]:
    """Every MIL op of an ML program spec (all functions, or only ``function``), nested blocks included."""
    def walk(block: Any) -> Iterator[Any]:
        for op in block.operations:
            yield op
            for inner in op.blocks:
                yield from walk(inner)

    for name, body in spec.mlProgram.functions.items():
        if function is None or name == function:
            for block in body.block_specializations.values():
                yield from walk(block)


def mil_op_counts(path: Path, function: str | None = None) -> dict[str, int]:
    """How often each MIL op type occurs in a saved ML program (all functions, or only ``function``)."""
    from collections import Counter

    return dict(Counter(op.type for op in mil_ops(load_spec(path), function)))


def package_bytes(path: Path) -> int:
    """Bytes of every file in a package directory (what a user copies to a device)."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
