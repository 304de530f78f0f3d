"""The bundle formats: one table used by export, quantize and load.

Each format names its exporter, quantizer and runtime backend by import path, so nothing heavy is
imported until used (the runtime stays torch-free), and lists the options only it takes: an option
given for a format that does not take it is an error naming the formats that do.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from .errors import EdgeVLMError

DTYPE_ALIASES = {"f32": "fp32", "f16": "fp16", "float32": "fp32", "float16": "fp16"}


@dataclass(frozen=True)
class Format:
    name: str
    export_dtypes: tuple[str, ...]  # first = default
    exporter: str  # "module:function" taking an ExportJob (export/job.py) -> {part name: Part}
    quantizer: str  # "module:function" taking a QuantizeJob (quantize/job.py) -> {part name: record}
    backend: str  # "module:Class" of the runtime backend
    install: str  # what to install when the backend's library is missing
    export_options: tuple[str, ...] = ()
    quantize_options: tuple[str, ...] = ()
    choices: tuple[tuple[str, tuple[Any, ...]], ...] = ()  # (option, allowed values) for options with a fixed set


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("onnx", ("fp32", "fp16"), "edgevlm.export.onnx:export_parts", "edgevlm.quantize.onnx_bundle:quantize_bundle",
           "edgevlm.runtime.backends.onnxruntime:OrtBackend", "pip install onnxruntime",
           export_options=("decoder_graph",),
           quantize_options=("block_size", "symmetric", "head_bits", "calibration"),
           choices=(("decoder_graph", ("fused", "portable")), ("head_bits", (4, 8)))),
    Format("gguf", ("fp32", "fp16"), "edgevlm.export.gguf:export_parts", "edgevlm.quantize.gguf:quantize_bundle",
           "edgevlm.runtime.backends.llamacpp:LlamaCppBackend", "pip install 'edgevlm[gguf]'",
           export_options=("mmproj_dtype",), choices=(("mmproj_dtype", ("fp16", "fp32")),)),
    Format("coreml", ("fp16", "fp32"), "edgevlm.export.coreml:export_parts",
           "edgevlm.quantize.coreml:quantize_bundle", "edgevlm.runtime.backends.coreml:CoreMLBackend",
           "pip install 'edgevlm[coreml]' (and run on macOS 15+)",
           export_options=("slice_patches",), quantize_options=("block_size",)),
)}


def get_format(name: str) -> Format:
    if name not in FORMATS:
        raise EdgeVLMError(f"unknown format {name!r}; choose one of {', '.join(FORMATS)}")
    return FORMATS[name]


def resolve(path: str) -> Any:
    """Import ``module:attribute`` lazily."""
    module, attribute = path.split(":")
    return getattr(importlib.import_module(module), attribute)


def export_dtype(format: Format, dtype: str | None) -> str:
    """The one spelling of an export dtype ("f32" and "float32" are accepted for "fp32")."""
    if dtype is None:
        return format.export_dtypes[0]
    spelled = DTYPE_ALIASES.get(dtype, dtype)
    if spelled not in format.export_dtypes:
        raise EdgeVLMError(f"dtype {dtype!r} is not available for format {format.name}; choose one of "
                           f"{', '.join(format.export_dtypes)}")
    return spelled


def check_options(format: Format, given: dict[str, Any], kind: str) -> dict[str, Any]:
    """The options that were set (not None); an option this format does not take is an error."""
    allowed = format.export_options if kind == "export" else format.quantize_options
    out = {k: v for k, v in given.items() if v is not None}
    for option in out:
        if option not in allowed:
            takers = [f.name for f in FORMATS.values()
                      if option in (f.export_options if kind == "export" else f.quantize_options)]
            flag = "--" + option.replace("_", "-")
            raise EdgeVLMError(f"{flag} applies to {' and '.join(takers) or 'no'} bundles, and this {kind} is "
                               f"{format.name}; leave it out.")
    for option, allowed in format.choices:
        if option in out and out[option] not in allowed:
            raise EdgeVLMError(f"--{option.replace('_', '-')} {out[option]!r} is not one of "
                               f"{', '.join(map(str, allowed))}")
    return out
