"""The bundle manifest: the contract between export, quantize, the runtimes and the Android app.

A bundle is a directory holding ``manifest.json`` and the files it lists. The manifest says what
every part is (file, format, inputs, outputs, KV-cache naming), how to preprocess images and lay out
prompts (as data, so that no runtime needs family-specific code), how to tokenize, how to generate
by default, what was quantized and how well the export reproduced the PyTorch reference, and the
sha256 and size of every file so that a damaged or tampered bundle is caught before it runs.

Bundles are written to a temporary sibling directory and renamed into place only when complete
(``BundleWriter``), so an interrupted export never leaves a half-written bundle behind.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BundleError

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
# An ONNX part whose weights exceed this keeps them in one side file, ``<name>.onnx.data``. Protobuf
# cannot hold more than 2 GiB, and below that onnxruntime keeps what it parsed from an inline file next
# to its own tensors: loading the MiniCPM-V-0.5B-class fp32 bundle (1.7 GB vision, 2.0 GB decoder)
# took 4.3 to 4.9 GB resident with inline weights, 3.77 GB with side files (benchmarks/README.md).
EXTERNAL_DATA_THRESHOLD = 256 * 1024 ** 2
FORMATS = ("onnx", "gguf", "coreml")
ATTENTION_KINDS = ("causal", "prefix_lm", "bidirectional_image")


@dataclass
class Part:
    """One exported component: ``vision``, ``embedding``, ``decoder``, ``text`` (GGUF), ``mmproj``..."""

    file: str
    format: str  # onnx | gguf | mlpackage
    inputs: dict[str, Any] = field(default_factory=dict)  # name -> {"dtype": str, "shape": [dims]}
    outputs: dict[str, Any] = field(default_factory=dict)
    # KV naming as %d templates (onnxruntime-genai style), e.g. {"past_key": "past_key_values.%d.key"}.
    kv: dict[str, str] = field(default_factory=dict)
    dtype: str = "fp32"
    extra: dict[str, Any] = field(default_factory=dict)  # part-specific data (shapes, compute units...)


@dataclass
class Manifest:
    format: str
    family: str  # minicpmv | paligemma | gemma3
    attention: str  # causal | prefix_lm | bidirectional_image
    text: dict[str, Any]  # hidden_size, num_layers, num_kv_heads, head_dim, vocab_size, max_context, ...
    vision: dict[str, Any]  # tokens_per_chunk, feature_dim, max_batch ...
    processor: dict[str, Any]  # edgevlm.processing.config.ProcessorConfig.to_dict()
    layout: dict[str, Any]  # edgevlm.processing.config.ImageLayout.to_dict()
    chat_template: dict[str, Any]  # edgevlm.processing.config.ChatTemplate.to_dict()
    tokenizer: dict[str, Any]  # {"file": "tokenizer.json", "bos_id": .., "eos_ids": [..], "pad_id": ..}
    parts: dict[str, Part]
    generation: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)  # checkpoint name, model_type, edgevlm version
    quantization: dict[str, Any] = field(default_factory=dict)  # part -> record of what was done
    validation: dict[str, Any] = field(default_factory=dict)  # stage -> parity figures from export
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # path -> {"sha256", "size"}
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "manifest.json") -> "Manifest":
        if not isinstance(data, dict):
            raise BundleError(f"{where}: the manifest is not a JSON object. Re-export the bundle.")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            if isinstance(version, int) and version > SCHEMA_VERSION:
                fix = "upgrade edgevlm (pip install -U edgevlm) to read it"
            else:
                fix = "re-export the bundle with this edgevlm version (edgevlm export ...)"
            raise BundleError(
                f"{where}: unknown manifest schema_version {version!r}; this edgevlm reads "
                f"version {SCHEMA_VERSION}. To fix: {fix}."
            )
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
        try:
            kwargs["parts"] = {name: Part(**p) for name, p in data["parts"].items()}
        except (TypeError, AttributeError) as exc:
            raise BundleError(f"{where}: a part entry is malformed ({exc}). Re-export the bundle.") from None
        manifest = cls(**kwargs)
        manifest.check_values(where)
        return manifest

    def part_bytes(self, name: str) -> int:
        """Bytes on disk of one part: its file, external data, or the whole package directory."""
        part = self.parts[name]
        package = part.extra.get("package")
        return sum(rec.get("size", 0) for rel, rec in self.files.items()
                   if rel in (part.file, part.file + ".data") or (package and rel.startswith(package + "/")))

    def check_values(self, where: str = "manifest.json") -> None:
        if self.format not in FORMATS:
            raise BundleError(f"{where}: format {self.format!r} is not one of {FORMATS}.")
        if self.attention not in ATTENTION_KINDS:
            raise BundleError(f"{where}: attention {self.attention!r} is not one of {ATTENTION_KINDS}.")
        for name, part in self.parts.items():
            if part.file not in self.files:
                raise BundleError(f"{where}: part {name!r} names file {part.file!r}, which the manifest's "
                                  "file list does not record. Re-export the bundle.")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(4 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _bundle_files(root: Path) -> list[Path]:
    """Every regular file under root except the manifest, as sorted relative paths."""
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file() and p.name != MANIFEST_NAME)


def record_files(root: Path) -> dict[str, dict[str, Any]]:
    return {str(rel): {"sha256": sha256_of(root / rel), "size": (root / rel).stat().st_size}
            for rel in _bundle_files(root)}


def read_manifest(bundle: str | os.PathLike, verify: bool = True) -> Manifest:
    """Read ``bundle/manifest.json``; with ``verify`` also check every listed file's size and sha256."""
    root = Path(bundle)
    if not root.is_dir():
        raise BundleError(f"{root}: not a bundle directory (it does not exist or is a file). "
                          "Pass the directory written by `edgevlm export`.")
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise BundleError(f"{root}: no {MANIFEST_NAME} here, so this is not an edgevlm bundle. "
                          "Create one with `edgevlm export CHECKPOINT -o OUT`.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: not valid JSON ({exc}). The bundle is damaged: re-copy or re-export it.") from None
    manifest = Manifest.from_dict(data, where=str(path))
    if verify:
        verify_files(root, manifest)
    return manifest


def verify_files(root: Path, manifest: Manifest) -> None:
    for rel, record in manifest.files.items():
        file = root / rel
        if not file.is_file():
            raise BundleError(f"{root}: file {rel} listed in the manifest is missing. The bundle was copied "
                              "incompletely: copy the whole directory again or re-export it.")
        size = file.stat().st_size
        if size != record.get("size"):
            raise BundleError(f"{file}: size {size} bytes, the manifest says {record.get('size')}. The file was "
                              "truncated or modified: re-copy the bundle or re-export it.")
        if sha256_of(file) != record.get("sha256"):
            raise BundleError(f"{file}: sha256 does not match the manifest. The file was modified or corrupted: "
                              "re-copy the bundle or re-export it.")


class BundleWriter:
    """Write a bundle into a temporary sibling directory; ``commit`` hashes, writes the manifest, renames.

    Used as a context manager: leaving the block with an exception removes the temporary directory,
    so ``out`` is either the complete new bundle or untouched.
    """

    def __init__(self, out: str | os.PathLike, overwrite: bool = False):
        self.out = Path(out).absolute()
        if self.out.exists() and not overwrite:
            raise BundleError(f"{self.out} already exists. Choose another output directory or pass --overwrite.")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.partial-", dir=self.out.parent))
        self.committed = False

    def path(self, rel: str) -> Path:
        target = self.tmp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def commit(self, manifest: Manifest) -> Manifest:
        manifest.files = record_files(self.tmp)
        manifest.check_values(where=str(self.out / MANIFEST_NAME))
        (self.tmp / MANIFEST_NAME).write_text(json.dumps(manifest.to_dict(), indent=2) + "\n", encoding="utf-8")
        if self.out.exists():
            shutil.rmtree(self.out)
        os.replace(self.tmp, self.out)
        self.committed = True
        return manifest

    def __enter__(self) -> "BundleWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.committed:
            shutil.rmtree(self.tmp, ignore_errors=True)
