"""The Core ML backend (macOS 15+): vision, embedding and stateful decoder packages behind the Backend protocol.

Everything model-specific comes from the manifest (export/coreml/): the parts' bindings (enumerated
slice shapes, derived vision inputs, mask inputs and their sliding windows, rotary tables), the
tokenizer's image token id, the text section's position offset. coremltools is imported only when a bundle is opened, and no torch.

KV cache: the decoder package holds it as Core ML state (fp16, [layers, 1, kv_heads, max_context,
head_dim]), created once per session with ``make_state()`` and passed to every ``predict``. The package
has two functions over that one state (export/coreml/decoder.py), all shapes fixed or enumerated so
the Neural Engine can run them: ``decode`` (one token) and ``prefill`` (enumerated lengths). A prompt
is cut into chunks that never split a block (a bidirectional image or prefix must be seen
whole), each chunk padded to the next prefill length; the write position is an input and the masks
span the whole cache, so rewinding is only ``n_past = n_keep``: later rows (padding included) are
masked until the next call overwrites them. A hybrid decoder (linear-attention layers) also holds
conv and recurrent states (binding ``recurrent_states``): its prefill function takes one fixed chunk
whose padding rows leave the states untouched; it rewinds only to 0 or to the last snapshot (a copy
of those states, read and written through the state object).

``models`` lets a caller supply objects with the MLModel interface (``predict(feeds, state=None)``,
``make_state()``; for the decoder, a dict function name -> such object) instead of loading packages;
the Linux tests use it to drive the exact PyTorch modules that were handed to the converter through
this backend's feed-building code.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import BundleError, DeviceError, EdgeVLMError
from ...manifest import Manifest, Part, inside
from ...processing.mrope import rotary_angles, stream_of_frequency
from ...processing.vision_inputs import derived_inputs
from .packed_patches import encode_packed, smallest_fitting
from ..backend import CacheSnapshot, KVCacheMixin, check_tokens, image_rows, position_ids, recurrent_rewind_error
from .ort_masks import attention_bias
from .ort_vision import stack_padded
from .prefill_chunks import block_safe_length

# device / compute_units argument -> coremltools.ComputeUnit member name
COMPUTE_UNITS = {"cpu_and_ne": "CPU_AND_NE", "ane": "CPU_AND_NE", "npu": "CPU_AND_NE", "cpu_and_gpu": "CPU_AND_GPU",
                 "gpu": "CPU_AND_GPU", "cpu_only": "CPU_ONLY", "cpu": "CPU_ONLY", "all": "ALL"}
PARTS = ("vision", "embedding", "decoder")


def table_streams(table: dict[str, Any]) -> np.ndarray | None:
    """The position stream of each rotary frequency of a binding's rope table: ``streams`` (contiguous
    M-RoPE sections, Qwen2-VL), interleaved ``mrope_section`` (hybrid decoders), or None (one stream)."""
    if table.get("streams") is not None:
        return np.asarray(table["streams"], np.int64)
    if table.get("mrope_section"):
        return stream_of_frequency(table["mrope_section"], interleaved=True, n_freq=len(table["inv_freq"]))
    return None


def rope_inputs(inv_freq: Any, scale: float, positions: np.ndarray, streams: Any = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """cos, sin float32 [1, T, rotary_dim] for absolute positions [T] (or [S, T] with ``streams``, each
    frequency's position stream: M-RoPE, table_streams), as transformers' rotary embedding computes them
    (float32 ``position * inv_freq``, duplicated halves, times the attention scaling)."""
    freqs = rotary_angles(positions, inv_freq, streams)  # [T, rotary_dim/2]
    emb = np.concatenate([freqs, freqs], axis=-1)  # [T, hd]
    return (np.cos(emb) * np.float32(scale))[None], (np.sin(emb) * np.float32(scale))[None]


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
            or part.runtime.get("compute_units", "cpu_and_ne")
        if choice not in COMPUTE_UNITS:
            raise DeviceError(f"unknown Core ML compute units {choice!r}; choose one of "
                              f"{', '.join(sorted(COMPUTE_UNITS))}.")
        path = inside(bundle, part.data_files[0] if part.data_files else str(Path(part.file).parent), "package")
        if not path.is_dir():
            raise BundleError(f"{path}: the Core ML package of part {name!r} is missing. Re-copy or re-export "
                              "the bundle.")
        units = getattr(ct.ComputeUnit, COMPUTE_UNITS[choice])
        functions = part.binding.get("functions")
        if name == "decoder" and functions:
            # One MLModel per function of the multifunction package; they share the state that
            # CoreMLBackend makes once (a state made by one function is passed to the other's predict).
            models[name] = {fn: ct.models.MLModel(str(path), compute_units=units, function_name=fn) for fn in functions}
        else:
            models[name] = ct.models.MLModel(str(path), compute_units=units)
    return models


def plan_chunks(start: int, count: int, sizes: list[int], max_context: int, blocks: np.ndarray
                ) -> list[tuple[int, int, int]]:
    """Cut rows [start, start + count) into (first row, real rows, padded length) calls.

    Each chunk takes the smallest prefill length that holds the rest (padded), else the largest that
    fits; a padded call must still end inside the cache. A chunk never ends inside a block (a query
    of a block attends to all its keys, which must be written in the same call). A padded length of
    1 means the decode function.
    """
    chunks, p, end = [], start, start + count
    while p < end:
        rest = end - p
        fits = [s for s in sizes if p + s <= max_context]
        size = min([s for s in fits if s >= rest], default=max(fits, default=1)) if rest > 1 else 1
        n = block_safe_length(blocks, p, min(rest, size), end)
        if n == 0:
            raise EdgeVLMError(f"a block of the prompt (an image or a bidirectional prefix) starting at row {p} is "
                               f"longer than the largest prefill length that fits ({size}); re-export the Core ML "
                               "bundle with a larger max_context (prefill lengths are capped by it).")
        chunks.append((p, n, size))
        p += n
    return chunks


class CoreMLBackend(KVCacheMixin):
    def __init__(self, bundle_dir: str | Path, manifest: Manifest, device: str | None = "auto",
                 compute_units: str | None = None, models: dict[str, Any] | None = None):
        self.bundle = Path(bundle_dir)
        parts = manifest.parts
        for name in ("embedding", "decoder"):
            if name not in parts:
                raise BundleError(f"{self.bundle}: the manifest has no {name!r} part, which the Core ML backend "
                                  "needs. Re-export with --format coreml.")
        self.models = models if models is not None else _load_models(self.bundle, parts, device, compute_units)
        self.vision_info = manifest.vision
        self.vision_binding: dict[str, Any] = dict(parts["vision"].binding) if "vision" in parts else {}
        self.image_token_id = manifest.tokenizer.image_token_id
        dec = parts["decoder"].binding
        self.max_context = int(manifest.text.max_context)
        self.n_past = 0
        self._masks: dict[str, int | None] = dict(dec["masks"])
        self._mask_value = float(dec["mask_value"])
        self._offset = int(manifest.text.position_offset)
        self._streams = int(manifest.text.position_streams)
        self._rope = list(dec["rope"])
        self._logits_input = dec.get("logits_index", "logits_index")
        self._blocks = np.full(self.max_context, -1, np.int32)  # block id of every cached row
        if "functions" not in dec:
            raise BundleError(f"{self.bundle}: this Core ML decoder predates the decode/prefill functions "
                              "(it writes its cache at S - T); re-export the bundle with --format coreml.")
        self._functions = self.models["decoder"]  # function name -> model, all sharing one state
        self._sizes = [int(s) for s in dec.get("prefill_sizes", [])] if "prefill" in self._functions else []
        self._position_input = dec.get("position_input", "position")
        self._recurrent = list(dec.get("recurrent_states", []))  # states that cannot be rewound row by row
        self._mark: CacheSnapshot | None = None  # the last snapshot of a recurrent model
        self._default = dec.get("default_function", "decode")
        self._state = self._functions[self._default].make_state()  # the caches, once

    # -- images ---------------------------------------------------------------------------------
    def encode_images(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Chunks -> features [n, tokens, hidden], one chunk per call (the packages have batch 1)."""
        if "vision" not in self.models:
            raise BundleError(f"{self.bundle}: this bundle has no vision part, so it cannot take images.")
        vision = self.models["vision"]
        pixels = np.asarray(inputs["pixel_values"], np.float32)
        derived = self.vision_binding.get("derived_inputs") or {}
        if self.vision_info.kind == "image":
            return np.concatenate([vision.predict({"pixel_values": pixels[i:i + 1]})["features"]
                                   for i in range(len(pixels))], axis=0)
        if self.vision_info.kind == "packed_patches":  # each image padded to an enumerated patch count
            return encode_packed(lambda feeds: vision.predict(feeds)["features"], inputs, self.vision_info, derived,
                                 max_batch=1, sizes=[int(s) for s in self.vision_binding["slice_patches"]], int32=True)
        tgt = np.asarray(inputs["tgt_sizes"]).astype(np.int64)
        patch = int(self.vision_info.patch_size)
        shapes = [int(s) for s in self.vision_binding["slice_patches"]]
        per_token = int(self.vision_info.params.get("patches_per_token", 0))  # a patch-merging part: rows follow patches
        out = []
        for i, (h, w) in enumerate(tgt.tolist()):
            real, size = h * w, smallest_fitting(shapes, h * w, "the image's aspect ratio is extreme: crop or pad "
                                                 "it closer to square, or re-export with larger slice shapes")
            padded = np.zeros((1, 3, patch, size * patch), np.float32)
            padded[..., : real * patch] = pixels[i, :, :, : real * patch]
            mask = np.zeros((1, size), np.float32)
            mask[:, :real] = 1.0
            feeds = {"pixel_values": padded, "patch_attention_mask": mask}
            for name, array in derived_inputs(derived, tgt[i:i + 1], size, self.vision_info.params).items():
                feeds[name] = array.astype(np.int32) if array.dtype == np.int64 else array
            rows = np.asarray(vision.predict(feeds)["features"], np.float32)[0]  # [tokens, D]
            out.append(rows[: real // per_token] if per_token else rows)  # the padding patches' rows dropped
        return stack_padded(out)  # [n, tokens, D]; a patch-merging part's chunks padded to the longest

    # -- text -------------------------------------------------------------------------------------
    def embed(self, input_ids: np.ndarray) -> np.ndarray:
        """int [T] -> float32 [1, T, hidden]."""
        ids = np.asarray(input_ids, np.int32).reshape(1, -1)
        return np.array(self.models["embedding"].predict({"input_ids": ids})["inputs_embeds"], np.float32)

    def forward(self, input_ids: np.ndarray, features: np.ndarray | None = None,
                block_ids: np.ndarray | None = None, positions: np.ndarray | None = None,
                all_logits: bool = False) -> np.ndarray:
        ids = check_tokens(input_ids, self.n_past, self.max_context, block_ids)
        t, past = len(ids), self.n_past
        pos = position_ids(positions, past, t, self._offset, self._streams)  # [T] or [S, T]
        embeds = self.embed(ids)  # [1, T, D]
        where, rows = image_rows(ids, self.image_token_id, features, embeds.shape[-1])
        embeds[0, where] = rows
        self._blocks[past:past + t] = -1 if block_ids is None else np.asarray(block_ids, np.int32)
        out = []
        for start, n, size in plan_chunks(past, t, self._sizes, self.max_context, self._blocks):
            chunk = embeds[:, start - past:start - past + n]  # [1, n, D]
            rows = pos[..., start - past:start - past + n]  # this chunk's position ids
            if not all_logits:
                out = [self._call(chunk, start, size, n - 1, rows)]
            elif size == 1 or (self._blocks[start:start + n] < 0).all():
                # Every row's logits, one decode call per row (causal rows: the same result as one call).
                out += [self._call(chunk[:, r:r + 1], start + r, 1, 0, rows[..., r:r + 1]) for r in range(n)]
            elif self._recurrent:
                raise EdgeVLMError("all_logits over a bidirectional block is not available for a model with "
                                   "recurrent layers (rerunning the chunk would advance their states)")
            else:
                # A block's rows see each other: rerun the padded chunk once per row (it rewrites the
                # same cache rows with the same values). Slow; only evaluation asks for all logits.
                out += [self._call(chunk, start, size, r, rows) for r in range(n)]
        self.n_past = past + t
        return np.stack(out) if all_logits else out[-1]

    def _call(self, chunk: np.ndarray, start: int, size: int, row: int, rows: np.ndarray) -> np.ndarray:
        """One decoder call: ``chunk`` [1, n, D] padded to ``size`` rows written at ``start``, with position ids
        ``rows`` [n] (or [S, n]); logits [vocab] of chunk row ``row``."""
        n, hidden = chunk.shape[1], chunk.shape[2]
        embeds = np.zeros((1, size, hidden), np.float32)
        embeds[:, :n] = chunk
        feeds = {"inputs_embeds": embeds}
        # Masks over the whole cache [1, 1, size, C]. Rows after the chunk's real ones (padding, or later
        # tokens of this prompt not written yet) count as causal-only, so real queries never see them;
        # padding queries get causal rows: finite, never read. Columns past the padded chunk stay hidden.
        blocks = self._blocks.copy()
        blocks[start + n:] = -1
        for name, window in self._masks.items():
            bias = np.full((1, 1, size, self.max_context), self._mask_value, np.float32)
            attention_bias(blocks, start, size, window, self._mask_value, out=bias[..., :start + size])
            feeds[name] = bias
        # Padding rows continue the chunk's positions (their outputs are never read).
        positions = np.concatenate([rows, rows[..., -1:] + 1 + np.arange(size - n)], axis=-1)  # [size] / [S, size]
        for table in self._rope:
            feeds[table["inputs"][0]], feeds[table["inputs"][1]] = rope_inputs(table["inv_freq"], table["scale"],
                                                                               positions, table_streams(table))
        feeds[self._position_input] = np.array([start], np.int32)
        feeds[self._logits_input] = np.array([row], np.int32)
        function = self._functions["decode" if size == 1 else "prefill"]
        logits = function.predict(feeds, state=self._state)["logits"]  # [1, 1, vocab]
        return np.asarray(logits, np.float32)[0, -1].copy()

    def rewind(self, n_keep: int) -> None:
        if not 0 <= n_keep <= self.n_past:
            raise ValueError(f"rewind({n_keep}) outside [0, {self.n_past}]")
        if self._recurrent and n_keep != self.n_past:
            if n_keep == 0:
                self._state = self._functions[self._default].make_state()  # fresh (zero) states
            elif self._mark is not None and self._mark.n_past == n_keep:
                self._write_states(self._mark.states)
            else:
                raise recurrent_rewind_error(n_keep, self.n_past)
        self._forget(n_keep)

    def _forget(self, n_keep: int) -> None:
        self.n_past = n_keep  # rows from n_keep on are overwritten by the next forward
        self._blocks[n_keep:] = -1
        if self._mark is not None and n_keep < self._mark.n_past:
            self._mark = None

    def _write_states(self, states: dict[str, np.ndarray]) -> None:
        for name, value in states.items():
            self._state.write_state(name, value)

    def snapshot(self) -> CacheSnapshot:
        """The length; with recurrent layers also a copy of their states (MLState.read_state)."""
        if not self._recurrent:
            return CacheSnapshot(self.n_past)
        self._mark = CacheSnapshot(self.n_past, {n: np.array(self._state.read_state(n)) for n in self._recurrent})
        return self._mark

    def restore(self, snapshot: CacheSnapshot) -> None:
        if not self._recurrent:
            return KVCacheMixin.restore(self, snapshot)
        if snapshot.n_past > self.n_past or snapshot.states is None:
            raise ValueError(f"cannot restore this snapshot ({snapshot.n_past} tokens) into a cache holding {self.n_past}")
        self._write_states(snapshot.states)
        self._forget(snapshot.n_past)

    def close(self) -> None:
        self.models = {}
        self._state = None
