"""Shared plumbing for the ONNX part exporters: torch.onnx export, external data, fp16, Part records.

Every exporter wraps a piece of the PyTorch reference in a small ``nn.Module`` whose forward takes
exactly the graph inputs, then calls ``export_module`` here. The Part returned describes the graph's
inputs and outputs as read back from the written file (names, dtypes, symbolic shapes), so the
runtime never has to guess them.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from ...manifest import EXTERNAL_DATA_THRESHOLD  # weights above it go to <name>.data (why: manifest.py)
OPSET = 18
DTYPES = ("fp32", "fp16")


def _param_bytes(module: torch.nn.Module) -> int:
    seen: set[int] = set()
    total = 0
    for tensor in list(module.parameters()) + list(module.buffers()):
        if tensor.data_ptr() in seen:
            continue
        seen.add(tensor.data_ptr())
        total += tensor.numel() * tensor.element_size()
    return total


def export_module(module: torch.nn.Module, args: tuple, path: Path, input_names: list[str],
                  output_names: list[str], dynamic_axes: dict[str, dict[int, str]], dtype: str = "fp32") -> Path:
    """Trace ``module(*args)`` to ``path`` (TorchScript exporter: fast and deterministic for these
    plain-tensor wrappers). Weights go to ``<name>.data`` above EXTERNAL_DATA_THRESHOLD."""
    import onnx

    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {DTYPES}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer warns about Python-level shape checks inside transformers/torch modules; the
        # parity tests are what tells whether the traced graph is right.
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, opset_version=OPSET, do_constant_folding=True, dynamo=False)
    stale = external_locations(path)  # per-tensor files the exporter may have written (> 2 GB)
    model = onnx.load(str(path), load_external_data=True)
    if dtype == "fp16":
        from .fp16 import to_fp16

        model = to_fp16(model)  # float32 I/O, so the runtime (and its KV buffers) are dtype-agnostic
    save_model(model, path, large=_param_bytes(module) // (2 if dtype == "fp16" else 1) > EXTERNAL_DATA_THRESHOLD)
    for name in stale - {path.name + ".data"}:
        (path.parent / name).unlink(missing_ok=True)
    return path


def external_locations(path: Path) -> set[str]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {entry.value for init in model.graph.initializer for entry in init.external_data if entry.key == "location"}


def save_model(model: Any, path: Path, large: bool) -> None:
    """One .onnx file, or .onnx + one ``<name>.data`` file holding every weight when ``large``."""
    import onnx

    data = path.with_name(path.name + ".data")
    if data.exists():
        data.unlink()
    if large:
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data.name, size_threshold=1024)
    else:
        onnx.save_model(model, str(path))


_ONNX_TYPES = {1: "float32", 10: "float16", 7: "int64", 6: "int32", 9: "bool", 16: "bfloat16"}


def io_spec(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Inputs and outputs of an ONNX file as {name: {"dtype", "shape"}}; symbolic dims stay names."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)

    def spec(values) -> dict[str, Any]:
        out = {}
        for value in values:
            tensor = value.type.tensor_type
            dims = [d.dim_param if d.dim_param else d.dim_value for d in tensor.shape.dim]
            out[value.name] = {"dtype": _ONNX_TYPES.get(tensor.elem_type, str(tensor.elem_type)), "shape": dims}
        return out

    return spec(model.graph.input), spec(model.graph.output)

