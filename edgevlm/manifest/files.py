"""Bundle files: hashing, reading and verifying a manifest, and writing a bundle atomically.

Bundles are written to a temporary sibling directory and renamed into place only when complete
(``BundleWriter``), so an interrupted export never leaves a half-written bundle behind; one that was
killed outright leaves its temporary directory, which the next write to the same place removes.
Every path a manifest names must stay inside the bundle (``inside``): a tampered manifest cannot make
the runtime read ``../x.onnx``, an absolute path, or a file a symlink inside the bundle points out to.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..errors import BundleError
from .schema import Manifest

MANIFEST_NAME = "manifest.json"
# An ONNX part whose weights exceed this keeps them in one side file, ``<name>.onnx.data``. Protobuf
# cannot hold more than 2 GiB, and below that onnxruntime keeps what it parsed from an inline file next
# to its own tensors: loading the MiniCPM-V-0.5B-class fp32 bundle (1.7 GB vision, 2.0 GB decoder)
# took 4.3 to 4.9 GB resident with inline weights, 3.77 GB with side files (benchmarks/README.md).
EXTERNAL_DATA_THRESHOLD = 256 * 1024 ** 2
PARTIAL = ".partial-"


def inside(root: str | os.PathLike, rel: str, what: str = "file") -> Path:
    """``root/rel`` if it resolves inside the bundle ``root`` (symlinks followed), else a BundleError."""
    root = Path(root)
    if not isinstance(rel, str) or not rel or Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise BundleError(f"{root}: the manifest names {what} {rel!r}, a path outside the bundle. Every file a "
                          "bundle uses must be inside its directory: the bundle was tampered with; re-export it.")
    path = root / rel
    real, base = os.path.realpath(path), os.path.realpath(root)
    if os.path.commonpath([real, base]) != base:
        raise BundleError(f"{path}: {what} {rel!r} is a link to {real}, outside the bundle. Every file a bundle "
                          "uses must be inside its directory: the bundle was tampered with; re-export it.")
    return path


def manifest_paths(manifest: Manifest) -> list[tuple[str, str]]:
    """(what, path) of every path the manifest names."""
    out = [("file", rel) for rel in manifest.files]
    out.append(("tokenizer file", manifest.tokenizer.file))
    for name, part in manifest.parts.items():
        out.append((f"part {name!r} file", part.file))
        out += [(f"part {name!r} data file", rel) for rel in part.data_files]
    return out


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
    return {rel.as_posix(): {"sha256": sha256_of(root / rel), "size": (root / rel).stat().st_size}
            for rel in _bundle_files(root)}


def read_manifest(bundle: str | os.PathLike, verify: bool = True) -> Manifest:
    """Read ``bundle/manifest.json``; every path it names must stay inside the bundle; with ``verify``
    also check every listed file's size and sha256."""
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
    for what, rel in manifest_paths(manifest):
        inside(root, rel, what)
    if verify:
        verify_files(root, manifest)
    return manifest


def verify_files(root: Path, manifest: Manifest) -> None:
    for rel, record in manifest.files.items():
        file = inside(root, rel)
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


def write_manifest(root: Path, manifest: Manifest) -> None:
    (root / MANIFEST_NAME).write_text(json.dumps(manifest.to_dict(), indent=2) + "\n", encoding="utf-8")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_partials(out: Path) -> list[Path]:
    """Temporary directories of earlier writes to ``out`` whose process is gone (killed mid-export)."""
    removed = []
    for tmp in out.parent.glob(f".{out.name}{PARTIAL}*"):
        try:
            pid = int(tmp.name[len(f".{out.name}{PARTIAL}"):].split("-", 1)[0])
        except ValueError:
            pid = -1
        if tmp.is_dir() and (pid <= 0 or not _alive(pid)):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


class BundleWriter:
    """Write a bundle into a temporary sibling directory; ``commit`` hashes, writes the manifest, renames.

    Used as a context manager: leaving the block with an exception removes the temporary directory,
    so ``out`` is either the complete new bundle or untouched. The temporary directory's name carries
    the writer's process id, so a later writer can tell a killed run's leftovers from a live one's.
    """

    def __init__(self, out: str | os.PathLike, overwrite: bool = False, source: str | os.PathLike | None = None):
        self.out = Path(out).absolute()
        if source is not None:
            src = Path(source).absolute().resolve()
            target = self.out.resolve() if self.out.exists() else self.out
            if target == src or src in target.parents:
                where = "the source bundle" if target == src else f"inside the source bundle {src}"
                raise BundleError(f"{self.out} is {where}; this writes a new bundle and never changes its input "
                                  "(the source's file list would no longer match): choose an -o directory outside "
                                  "the source.")
        if self.out.exists() and not overwrite:
            raise BundleError(f"{self.out} already exists. Choose another output directory or pass --overwrite.")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(self.out)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}{PARTIAL}{os.getpid()}-", dir=self.out.parent))
        self.committed = False

    def path(self, rel: str) -> Path:
        target = self.tmp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def commit(self, manifest: Manifest) -> Manifest:
        manifest.files = record_files(self.tmp)
        manifest.check_values(where=str(self.out / MANIFEST_NAME))
        for what, rel in manifest_paths(manifest):
            inside(self.tmp, rel, what)
        write_manifest(self.tmp, manifest)
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
