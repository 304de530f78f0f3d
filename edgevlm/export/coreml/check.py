"""A CoreMLBackend over the PyTorch modules handed to the converter, for systems without Core ML.

Core ML packages run only on macOS. Elsewhere, the strongest check of a Core ML export is to drive
the exact modules that coremltools traced (same classes, same weights, the fp16 KV cache the state
holds) through CoreMLBackend's own feed-building code, with the Part records the export wrote. That
checks the wiring and the call pattern the macOS runtime uses (prompt chunks padded to an enumerated
prefill length, decode steps with an explicit write position, masks over the whole cache, slice
padding, manifest data) but not Core ML's fp16 arithmetic, which only the macOS test can.

``TorchPackage`` offers the MLModel interface the backend calls: ``predict(feeds, state=None)`` and
``make_state()``. Given the declared inputs of a function, it refuses feeds whose shapes that
function would refuse (a fixed shape, or one of the enumerated shapes). The decoder's functions are
TorchPackages over ONE module, so they share its KV buffers as the Core ML functions share one state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ...runtime.backends.coreml import CoreMLBackend
from .decoder import decoder_module
from .embedding import EmbeddingCoreML


class TorchPackage:
    """The MLModel interface over a converter module; inputs are taken by name in the module's order."""

    def __init__(self, module: nn.Module, input_names: list[str], output_name: str,
                 declared: dict[str, Any] | None = None):
        self.module, self.input_names, self.output_name = module.eval(), list(input_names), output_name
        self.declared = declared  # name -> {"shape"[, "enumerated"]} as in the manifest, or None

    def make_state(self) -> nn.Module:
        self.module.reset()  # the decoder's KV buffers are its state
        return self.module

    def _check_shapes(self, feeds: dict[str, np.ndarray]) -> None:
        picks = set()
        for name, spec in (self.declared or {}).items():
            allowed = [list(s) for s in spec.get("enumerated", [spec["shape"]])]
            shape = list(np.shape(feeds[name]))
            if shape not in allowed:
                raise ValueError(f"{name}: shape {shape} is not one the function declares ({allowed})")
            if len(allowed) > 1:
                picks.add(allowed.index(shape))
        # coremltools (iOS 18) requires all enumerated inputs to list the same number of shapes; feed
        # them together (the i-th shape of each), never a mix, whatever Core ML would tolerate.
        if len(picks) > 1:
            raise ValueError(f"enumerated inputs fed with shapes of different enumerations: {sorted(picks)}")

    def predict(self, feeds: dict[str, np.ndarray], state: Any = None) -> dict[str, np.ndarray]:
        if set(feeds) != set(self.input_names):
            raise ValueError(f"fed {sorted(feeds)}, the model takes {self.input_names}")
        self._check_shapes(feeds)
        with torch.no_grad():
            out = self.module(*[torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in self.input_names])
        return {self.output_name: out.float().numpy()}


def module_backend(ref: Any, manifest: Any, cache_dtype: torch.dtype = torch.float16) -> CoreMLBackend:
    """CoreMLBackend running ``ref``'s converter modules with the manifest's records.

    ``cache_dtype`` float16 is what the Core ML state holds; float32 isolates the wiring from rounding.
    """
    dec = manifest.parts["decoder"].binding
    decoder = decoder_module(ref.language_model, int(manifest.text.max_context), cache_dtype)
    graph = ref.vision_graph()
    vision = TorchPackage(graph.module("coreml"), graph.names, "features")
    functions = {name: TorchPackage(decoder, decoder.input_names(), "logits", function["inputs"])
                 for name, function in dec["functions"].items()}
    models = {"vision": vision, "embedding": TorchPackage(EmbeddingCoreML(ref), ["input_ids"], "inputs_embeds"),
              "decoder": functions}
    return CoreMLBackend(Path("."), manifest, models=models)


def module_manifest(ref: Any, max_context: int, sizes: list[int] | None = None) -> Any:
    """The manifest a Core ML export of ``ref`` would write, computed without converting (tests drive the
    converter modules with it): the same bindings the exporters record."""
    from ...manifest import Part
    from .. import bare_manifest
    from .decoder import decoder_binding
    from .vision import vision_binding

    decoder = decoder_module(ref.language_model, max_context)
    parts = {"vision": Part("vision.mlpackage/Manifest.json", "mlpackage", binding=vision_binding(ref.vision_graph())),
             "embedding": Part("embedding.mlpackage/Manifest.json", "mlpackage"),
             "decoder": Part("decoder.mlpackage/Manifest.json", "mlpackage", binding=decoder_binding(decoder, sizes))}
    return bare_manifest(ref, "coreml", parts, max_context, max_batch=1)


def validate_with_modules(ref: Any, ckpt: str | Path, root: Path, manifest: Any,
                          say: Any = None) -> dict[str, Any]:
    """The export parity check (export/validate.py) with the converter modules instead of Core ML.

    Always at the fp16 tolerance: even an fp32 export keeps its KV cache in an fp16 state. The
    report says which runner produced the figures, so a manifest never passes this off as Core ML's.
    """
    from ...processing.tokenizer import Tokenizer
    from ..validate import validate_bundle

    backend = module_backend(ref, manifest)
    tokenizer = Tokenizer.from_file(Path(root) / manifest.tokenizer.file)
    report = validate_bundle(ref, str(ckpt), backend, manifest, tokenizer, "fp16", say, bundle=root)
    report["runner"] = ("PyTorch modules handed to coremltools, fp16 KV cache, driven by CoreMLBackend "
                        "(Core ML itself runs only on macOS; these figures do not include its fp16 arithmetic)")
    return report
