"""The family contract: what export, quantize and the tests may ask of a model family.

A family is a folder ``edgevlm/families/<folder>/`` whose ``__init__.py`` defines ``FAMILY``, an
instance of ``Family``. Everything only that family knows lives in the folder; the generic code
(export/, quantize/, runtime/) calls these methods and never names a family. This module imports
neither torch nor transformers: the registry, ``bundle_spec`` and ``matches`` must work in the
torch-free runtime install, so heavy modules are imported inside the methods that need them.

What a family answers (see DESIGN.md, "How to add a family"):
- ``matches(config)``: is this checkpoint's config.json mine?
- ``bundle_spec(ckpt, config)``: processor, image layout, chat template, stop tokens, sampling
  defaults, read from config.json and the checkpoint's processor files (plain data; it becomes the
  manifest, which is all the runtime and the Android core ever read);
- ``load_reference(ckpt, dtype)``: the PyTorch reference (a ``ReferenceVLM``), which also hands the
  exporters its vision graph (``ref.vision_graph()``) and its text model;
- ``write_mmproj(ref, path, dtype)``: its vision part in llama.cpp's mtmd format, where llama.cpp has one;
- ``make_tiny(name, out, ...)``: tiny deterministic checkpoints in the published Hugging Face layout.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class BundleSpec:
    """A family's per-model data for the manifest: how to preprocess, lay out prompts and stop."""

    processor: Any  # edgevlm.processing.config.ProcessorConfig
    layout: Any  # edgevlm.processing.config.ImageLayout
    chat_template: Any  # edgevlm.processing.config.ChatTemplate
    eos_tokens: list[str]  # generation ends at any of these
    generation: dict[str, Any] = field(default_factory=dict)  # model-recommended sampling settings

    def tokenizer_record(self, tokenizer_json: Path) -> dict[str, Any]:
        """The manifest's ``tokenizer`` section: the single home of every token id the runtime needs."""
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(tokenizer_json))
        eos_ids = [tok.token_to_id(t) for t in self.eos_tokens if tok.token_to_id(t) is not None]
        return {"file": "tokenizer.json", "eos_ids": eos_ids, "eos_tokens": self.eos_tokens,
                "vocab_size": tok.get_vocab_size(),
                "image_token_id": tok.token_to_id(self.layout.feature_token)}


class Family:
    """One model family. Subclasses live in their family folder and set the class attributes.

    Every method has a default that calls the folder's module of the same role (convention over
    boilerplate): ``spec.matches`` / ``spec.bundle_spec``, ``reference.load_reference``,
    ``mmproj.write_mmproj`` (no mmproj.py: llama.cpp has no projector, None) and ``tiny.make_tiny``.
    A family overrides only what it does differently (e.g. a reference that is transformers' own class)."""

    name: str = ""  # manifest ``family``
    folder: str = ""  # edgevlm/families/<folder>/
    tiny_names: tuple[str, ...] = ()  # make_tiny names this family builds
    description: str = ""

    def _module(self, role: str) -> Any:
        """The folder's module for ``role`` (spec, reference, mmproj, tiny), imported on first use."""
        return importlib.import_module(f"{__package__}.{self.folder}.{role}")

    def _has_module(self, role: str) -> bool:
        return importlib.util.find_spec(f"{__package__}.{self.folder}.{role}") is not None

    def matches(self, config: dict[str, Any]) -> bool:
        return self._module("spec").matches(config)

    def bundle_spec(self, ckpt: Path | None, config: dict[str, Any]) -> BundleSpec:
        """``ckpt`` is the checkpoint directory (its processor files), None where only config.json is at hand."""
        return self._module("spec").bundle_spec(ckpt, config)

    def load_reference(self, ckpt: str | Path, dtype: Any = None) -> Any:
        """The PyTorch reference of a checkpoint directory (imports torch and transformers)."""
        return self._module("reference").load_reference(ckpt, dtype)

    def write_mmproj(self, ref: Any, path: Path, dtype: str = "fp16") -> Any:
        """Write the vision part as llama.cpp's mtmd projector GGUF and return its Part, or None when
        llama.cpp has no projector for this family (the GGUF bundle then carries an ONNX vision part only)."""
        if not self._has_module("mmproj"):
            return None
        return self._module("mmproj").write_mmproj(ref, path, dtype)

    def make_tiny(self, name: str, out: Path, seed: int = 0, **options: Any) -> Path:
        """Write tiny checkpoint ``name`` (one of ``tiny_names``) to ``out`` in the published layout."""
        return self._module("tiny").make_tiny(name, out, seed, **options)

    def __repr__(self) -> str:
        return f"<family {self.name}>"
