"""Manifest schema 2: typed sections, one home for each fact.

A bundle is a directory holding ``manifest.json`` and the files it lists. The manifest is the
contract between export, quantize, the runtimes and the Android core: what every part is and how
its graph names bind (``parts``), the text model's shape (``text``), how image features are made
(``vision``), every token id the runtime needs (``tokenizer``), how images are preprocessed and
prompts laid out (``processor``, ``layout``, ``chat_template``: plain data, so no runtime carries
family code), how to generate by default, what was quantized, how well the export reproduced the
PyTorch reference, and the sha256 and size of every file.

Where each fact lives (schema 1 kept copies in several places; edgevlm/manifest/upgrade.py reads it):
- the image placeholder token id, eos ids, vocabulary size: ``tokenizer`` only;
- attention over the prompt (causal | prefix | image_blocks): ``layout.attention`` only;
- max_context, num_layers, layer types, sliding window, position offset: ``text`` only;
- tokens_per_chunk, max_batch, patch size, derived-input parameters: ``vision`` only;
- dtype: one spelling, "fp32" / "fp16" / the quantization method ("w4", "int8", "q4_0" ...);
- ``Part.binding``: graph names the runtime binds (KV templates, mask inputs, logits index, derived
  inputs); ``Part.runtime``: how to open the part; ``Part.info``: informational, never read to run.
- small learned arrays the runtime uses outside every graph (a row-separator embedding that the
  feature packing inserts): data parts of format "npy" (``DATA_FORMATS``), one ``.npy`` file each,
  named by what reads them (``runtime/images.py`` ``ImageKind.tables``); quantization copies them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..errors import BundleError
from .upgrade import SCHEMA_VERSION, upgrade
FORMATS = ("onnx", "gguf", "coreml")
DATA_FORMATS = ("npy",)  # parts that are arrays, not models (read with numpy, never quantized)
PART_FORMATS = ("onnx", "gguf", "mlpackage") + DATA_FORMATS
LAYER_TYPES = ("full_attention", "sliding_attention", "linear_attention")  # linear: recurrent state, no KV
VISION_KINDS = ("image", "patch_sequence", "packed_patches")


class _Section:
    """from_dict with a clear error for unknown or missing keys (a typo must not pass silently)."""

    @classmethod
    def from_dict(cls, data: Any, where: str):
        if not isinstance(data, dict):
            raise BundleError(f"{where}: {cls.__name__} is not a JSON object. Re-export the bundle.")
        fields = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        unknown, missing = sorted(set(data) - fields), sorted(required - set(data))
        if unknown or missing:
            raise BundleError(f"{where}: {cls.__name__} has unknown fields {unknown} / lacks {missing}. "
                              "Re-export the bundle or upgrade edgevlm.")
        return cls(**data)


@dataclass
class TextInfo(_Section):
    """The text decoder's shape: what caches, positions and masks are built from."""

    arch: str  # llama.cpp / onnxruntime-genai architecture name
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int  # rows of the output head (>= the tokenizer's when the table was padded)
    max_context: int  # cache capacity in tokens, allocated once per session
    layer_types: list[str] = field(default_factory=list)  # per layer, LAYER_TYPES; empty = all full attention
    sliding_window: int | None = None
    position_offset: int = 0  # added to every position id (a model numbering positions from 1)
    position_streams: int = 1  # position ids per token: 1 (RoPE), 3 (M-RoPE: temporal, height, width)
    details: dict[str, Any] = field(default_factory=dict)  # informational: rope, softcaps, norm eps, ties


@dataclass
class VisionInfo(_Section):
    """How the vision part makes image features, and how the runtime feeds it."""

    kind: str  # "image": fixed-size pixels [B, 3, H, W]; "patch_sequence": chunks as padded patch rows + mask;
    # "packed_patches": images' patch rows [sum N, C*T*p*p] + image_grid_thw, run grouped by grid
    tokens_per_chunk: int  # feature rows per chunk (vision-part output rows); 0: per image, from its plan
    hidden_size: int  # width of a feature row (= the text model's hidden size)
    max_batch: int = 16  # chunks per vision run
    patch_size: int = 14
    image_size: int | None = None  # "image": the side the part takes
    params: dict[str, Any] = field(default_factory=dict)  # parameters of the derived inputs (processing/vision_inputs.py)


@dataclass
class TokenizerInfo(_Section):
    file: str
    vocab_size: int
    eos_ids: list[int] = field(default_factory=list)
    eos_tokens: list[str] = field(default_factory=list)
    image_token_id: int | None = None  # the placeholder whose rows receive image features


@dataclass
class Part(_Section):
    """One exported component: ``vision``, ``embedding``, ``decoder``, ``text`` (GGUF), ``mmproj``; or a
    data part (format "npy": one array, e.g. ``image_newline``)."""

    file: str
    format: str  # onnx | gguf | mlpackage | npy
    dtype: str = "fp32"
    inputs: dict[str, Any] = field(default_factory=dict)  # name -> {"dtype": str, "shape": [dims]}
    outputs: dict[str, Any] = field(default_factory=dict)
    data_files: list[str] = field(default_factory=list)  # side files / package folders this part owns
    binding: dict[str, Any] = field(default_factory=dict)  # graph names the runtime binds
    runtime: dict[str, Any] = field(default_factory=dict)  # how to open it (optimization level, compute units...)
    info: dict[str, Any] = field(default_factory=dict)  # informational only


@dataclass
class Manifest:
    format: str
    family: str
    text: TextInfo
    vision: VisionInfo | None
    tokenizer: TokenizerInfo
    processor: dict[str, Any]  # edgevlm.processing.config.ProcessorConfig.to_dict()
    layout: dict[str, Any]  # edgevlm.processing.config.ImageLayout.to_dict()
    chat_template: dict[str, Any]  # edgevlm.processing.config.ChatTemplate.to_dict()
    parts: dict[str, Part]
    generation: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)  # checkpoint name, model_type, edgevlm version
    quantization: dict[str, Any] = field(default_factory=dict)  # part -> record of what was done
    validation: dict[str, Any] = field(default_factory=dict)  # stage -> parity figures from export
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # path -> {"sha256", "size"}
    schema_version: int = SCHEMA_VERSION

    @property
    def attention(self) -> str:
        """How the prompt attends: "causal" | "prefix" | "image_blocks" (layout.attention)."""
        return self.layout.get("attention", "causal")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "manifest.json") -> "Manifest":
        if not isinstance(data, dict):
            raise BundleError(f"{where}: the manifest is not a JSON object. Re-export the bundle.")
        data = upgrade(data, where)
        names = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING}
        missing = sorted(required - data.keys())
        if missing:
            raise BundleError(f"{where}: the manifest lacks {', '.join(missing)}. Re-export the bundle.")
        unknown = sorted(data.keys() - names)
        if unknown:
            raise BundleError(f"{where}: the manifest has unknown fields {', '.join(unknown)}. "
                              "Re-export the bundle or upgrade edgevlm.")
        kwargs = dict(data)
        for key in ("parts", "processor", "layout", "chat_template"):
            if not isinstance(data[key], dict):
                raise BundleError(f"{where}: {key} is not a JSON object. Re-export the bundle.")
        kwargs["parts"] = {name: Part.from_dict(p, f"{where}: part {name!r}") for name, p in data["parts"].items()}
        kwargs["text"] = TextInfo.from_dict(data["text"], f"{where}: text")
        kwargs["vision"] = None if data["vision"] is None else VisionInfo.from_dict(data["vision"], f"{where}: vision")
        kwargs["tokenizer"] = TokenizerInfo.from_dict(data["tokenizer"], f"{where}: tokenizer")
        manifest = cls(**kwargs)
        manifest.check_values(where)
        return manifest

    @property
    def data_parts(self) -> dict[str, Part]:
        """The parts that are arrays (format "npy"), by name."""
        return {name: part for name, part in self.parts.items() if part.format in DATA_FORMATS}

    def part_bytes(self, name: str) -> int:
        """Bytes on disk of one part: its file and every side file or package folder it owns."""
        part = self.parts[name]
        owned = (part.file, *part.data_files)
        return sum(rec.get("size", 0) for rel, rec in self.files.items()
                   if rel in owned or any(rel.startswith(d.rstrip("/") + "/") for d in part.data_files))

    def check_values(self, where: str = "manifest.json") -> None:
        if self.format not in FORMATS:
            raise BundleError(f"{where}: format {self.format!r} is not one of {FORMATS}.")
        if self.attention not in ("causal", "prefix", "image_blocks"):
            raise BundleError(f"{where}: layout.attention {self.attention!r} is not causal, prefix or image_blocks.")
        unknown = sorted(set(self.text.layer_types) - set(LAYER_TYPES))
        if unknown:
            raise BundleError(f"{where}: text.layer_types names {unknown}, which this edgevlm does not run "
                              f"(it knows {', '.join(LAYER_TYPES)}). Upgrade edgevlm.")
        if self.vision is not None and self.vision.kind not in VISION_KINDS:
            raise BundleError(f"{where}: vision.kind {self.vision.kind!r} is not one of {VISION_KINDS}. Upgrade edgevlm.")
        from ..processing.vision_inputs import DERIVED, PARAMETERS

        for name, part in self.parts.items():
            for graph_input, kind in part.binding.get("derived_inputs", {}).items():
                if kind not in DERIVED:
                    raise BundleError(f"{where}: part {name!r} input {graph_input!r} is derived as {kind!r}, which this "
                                      f"edgevlm does not compute (it knows {', '.join(DERIVED)}). Upgrade edgevlm.")
                lacking = [k for k in PARAMETERS[kind] if self.vision is None or k not in self.vision.params]
                if lacking:
                    raise BundleError(f"{where}: vision.params lacks {', '.join(lacking)}, which input {graph_input!r} "
                                      "needs. Re-export the bundle.")
            if part.format not in PART_FORMATS:
                raise BundleError(f"{where}: part {name!r} has format {part.format!r}, not one of {PART_FORMATS}.")
            if part.file not in self.files:
                raise BundleError(f"{where}: part {name!r} names file {part.file!r}, which the manifest's "
                                  "file list does not record. Re-export the bundle.")
