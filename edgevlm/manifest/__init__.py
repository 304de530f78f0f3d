"""The bundle manifest (schema 2, reads schema 1): the contract between export, quantize and the runtimes."""

from .files import (EXTERNAL_DATA_THRESHOLD, MANIFEST_NAME, BundleWriter, inside, read_manifest, record_files,
                    sha256_of, verify_files, write_manifest)
from .schema import FORMATS, SCHEMA_VERSION, Manifest, Part, TextInfo, TokenizerInfo, VisionInfo

__all__ = ["EXTERNAL_DATA_THRESHOLD", "MANIFEST_NAME", "BundleWriter", "inside", "read_manifest", "record_files",
           "sha256_of", "verify_files", "write_manifest", "FORMATS", "SCHEMA_VERSION", "Manifest", "Part",
           "TextInfo", "TokenizerInfo", "VisionInfo"]
