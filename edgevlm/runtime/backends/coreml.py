"""The Core ML backend (macOS 15+): vision, embedding and stateful decoder packages behind the Backend protocol.

Everything family-specific comes from the parts' manifest entries (export/coreml_*.py): enumerated
slice shapes, derived vision inputs, the image token id, mask inputs and their sliding windows, rotary
tables, the position offset. coremltools is imported only when a bundle is opened, and no torch.

KV cache: the decoder package holds it as Core ML state (fp16, [layers, 1, kv_heads, max_context,
head_dim]), created once per session with ``make_state()`` and passed to every ``predict``. The model
writes the T new rows at ``S - T`` where S is the mask width (n_past + T), so rewinding is only
``n_past = n_keep``: later rows are overwritten by the next forward and masked until then.

``models`` lets a caller supply objects with the MLModel interface (``predict(feeds, state=None)``,
``make_state()``) instead of loading packages; the Linux tests use it to drive the exact PyTorch
modules that were handed to the converter through this backend's feed-building code.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import BundleError, DeviceError, EdgeVLMError
from ...manifest import Manifest, Part
from ..backend import check_tokens, image_rows
from ..vision_inputs import derived_inputs
from .ort_masks import attention_bias

# device / compute_units argument -> coremltools.ComputeUnit member name
COMPUTE_UNITS = {"cpu_and_ne": "CPU_AND_NE", "ane": "CPU_AND_NE", "npu": "CPU_AND_NE", "cpu_and_gpu": "CPU_AND_GPU",
                 "gpu": "CPU_AND_GPU", "cpu_only": "CPU_ONLY", "cpu": "CPU_ONLY", "all": "ALL"}
PARTS = ("vision", "embedding", "decoder")


def rope_inputs(inv_freq: Any, scale: float, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cos, sin float32 [1, T, head_dim] for absolute positions [T], as transformers' rotary embedding
    computes them (float32 ``position * inv_freq``, duplicated halves, times the attention scaling)."""
    freqs = np.asarray(positions).astype(np.float32)[:, None] * np.asarray(inv_freq, np.float32)[None, :]  # [T, hd/2]
    emb = np.concatenate([freqs, freqs], axis=-1)  # [T, hd]
    return (np.cos(emb) * np.float32(scale))[None], (np.sin(emb) * np.float32(scale))[None]


def smallest_fitting(shapes: list[int], n: int) -> int:
    """The smallest enumerated patch count that holds n patches."""
    for size in sorted(shapes):
        if size >= n:
            return size
    raise EdgeVLMError(f"an image chunk has {n} patches, more than the largest vision shape exported "
                       f"({max(shapes)}); the image's aspect ratio is extreme: crop or pad it closer to "
                       "square, or re-export with larger slice shapes.")


def _load_models(bundle: Path, parts: dict[str, Part], device: str | None, compute_units: str | None
                 ) -> dict[str, Any]:
    if platform.system() != "Darwin":
        raise EdgeVLMError(f"{bundle} is a Core ML bundle, which runs only on macOS/iOS (this is "
                           f"{platform.system()}). Here, export to ONNX or GGUF instead: "
                           "edgevlm export CKPT -o OUT --format onnx|gguf.")
    release = platform.mac_ver()[0]
    if release and int(release.split(".")[0]) < 15:
        raise EdgeVLMError(f"{bundle}: the Core ML decoder keeps its KV cache as model state, which needs macOS 15 "
                           f"or later (this is macOS {release}). Update macOS, or export to ONNX or GGUF instead.")
    try:
        import coremltools as ct
    except ImportError as exc:
        raise EdgeVLMError(f"Core ML bundles need coremltools ({exc}). Install it: pip install 'edgevlm[coreml]'."
                           ) from None
    models = {}
    for name in PARTS:
        if name not in parts:
            continue
        part = parts[name]
        choice = compute_units or (device if device not in (None, "auto", "default") else None) \
            or part.extra.get("compute_units", "cpu_and_ne")
        if choice not in COMPUTE_UNITS:
            raise DeviceError(f"unknown Core ML compute units {choice!r}; choose one of "
                              f"{', '.join(sorted(COMPUTE_UNITS))}.")
        path = bundle / part.extra.get("package", Path(part.file).parent)
        if not path.is_dir():
            raise BundleError(f"{path}: the Core ML package of part {name!r} is missing. Re-copy or re-export "
                              "the bundle.")
        models[name] = ct.models.MLModel(str(path), compute_units=getattr(ct.ComputeUnit, COMPUTE_UNITS[choice]))
    return models


class CoreMLBackend:
    def __init__(self, bundle_dir: str | Path, manifest: Manifest, device: str | None = "auto",
                 compute_units: str | None = None, models: dict[str, Any] | None = None):
        self.bundle = Path(bundle_dir)
        parts = manifest.parts
        for name in ("embedding", "decoder"):
            if name not in parts:
                raise BundleError(f"{self.bundle}: the manifest has no {name!r} part, which the Core ML backend "
                                  "needs. Re-export with --format coreml.")
        self.models = models if models is not None else _load_models(self.bundle, parts, device, compute_units)
        self.vision_extra: dict[str, Any] = dict(parts["vision"].extra) if "vision" in parts else {}
        self.image_token_id = int(parts["embedding"].extra["image_token_id"])
        dec = parts["decoder"].extra
        self.max_context = int(dec["max_context"])
        self.n_past = 0
        self._masks: dict[str, int | None] = dict(dec["masks"])
        self._mask_value = float(dec["mask_value"])
        self._offset = int(dec.get("position_offset", 0))
        self._rope = list(dec["rope"])
        self._logits_input = dec.get("logits_index_input", "logits_index")
        self._blocks = np.full(self.max_context, -1, np.int32)  # block id of every cached row
        self._state = self.models["decoder"].make_state()  # the KV cache, created once per session

    # -- images ---------------------------------------------------------------------------------
    def encode_images(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Chunks -> features [n, tokens, hidden], one chunk per call (the packages have batch 1)."""
        if "vision" not in self.models:
            raise BundleError(f"{self.bundle}: this bundle has no vision part, so it cannot take images.")
        vision = self.models["vision"]
        pixels = np.asarray(inputs["pixel_values"], np.float32)
        derived = self.vision_extra.get("derived_inputs") or {}
        if not derived:
            return np.concatenate([vision.predict({"pixel_values": pixels[i:i + 1]})["features"]
                                   for i in range(len(pixels))], axis=0)
        tgt = np.asarray(inputs["tgt_sizes"]).astype(np.int64)
        patch = int(self.vision_extra["patch_size"])
        shapes = [int(s) for s in self.vision_extra["slice_patches"]]
        out = []
        for i, (h, w) in enumerate(tgt.tolist()):
            real, size = h * w, smallest_fitting(shapes, h * w)
            padded = np.zeros((1, 3, patch, size * patch), np.float32)
            padded[..., : real * patch] = pixels[i, :, :, : real * patch]
            mask = np.zeros((1, size), np.float32)
            mask[:, :real] = 1.0
            feeds = {"pixel_values": padded, "patch_attention_mask": mask}
            for name, array in derived_inputs(derived, tgt[i:i + 1], size, self.vision_extra).items():
                feeds[name] = array.astype(np.int32) if array.dtype == np.int64 else array
            out.append(vision.predict(feeds)["features"])  # [1, tokens, D]
        return np.concatenate(out, axis=0).astype(np.float32)

    # -- text -------------------------------------------------------------------------------------
    def embed(self, input_ids: np.ndarray) -> np.ndarray:
        """int [T] -> float32 [1, T, hidden]."""
        ids = np.asarray(input_ids, np.int32).reshape(1, -1)
        return np.array(self.models["embedding"].predict({"input_ids": ids})["inputs_embeds"], np.float32)

    def forward(self, input_ids: np.ndarray, features: np.ndarray | None = None,
                block_ids: np.ndarray | None = None, all_logits: bool = False) -> np.ndarray:
        ids = check_tokens(input_ids, self.n_past, self.max_context, block_ids)
        t, past = len(ids), self.n_past
        embeds = self.embed(ids)  # [1, T, D]
        where, rows = image_rows(ids, self.image_token_id, features, embeds.shape[-1])
        embeds[0, where] = rows
        self._blocks[past:past + t] = -1 if block_ids is None else np.asarray(block_ids, np.int32)
        feeds = {"inputs_embeds": embeds}
        for name, window in self._masks.items():
            feeds[name] = attention_bias(self._blocks, past, t, window, self._mask_value)  # [1, 1, T, past+T]
        positions = np.arange(past, past + t) + self._offset
        for table in self._rope:
            feeds[table["inputs"][0]], feeds[table["inputs"][1]] = rope_inputs(table["inv_freq"], table["scale"],
                                                                               positions)
        feeds[self._logits_input] = np.arange(t, dtype=np.int32) if all_logits else np.array([t - 1], np.int32)
        logits = self.models["decoder"].predict(feeds, state=self._state)["logits"]  # [1, K, vocab]
        self.n_past = past + t
        logits = np.asarray(logits, np.float32)
        return logits[0].copy() if all_logits else logits[0, -1].copy()

    def rewind(self, n_keep: int) -> None:
        if not 0 <= n_keep <= self.n_past:
            raise ValueError(f"rewind({n_keep}) outside [0, {self.n_past}]")
        self.n_past = n_keep  # rows from n_keep on are overwritten by the next forward
        self._blocks[n_keep:] = -1

    def close(self) -> None:
        self.models = {}
        self._state = None
