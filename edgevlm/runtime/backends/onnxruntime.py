"""The onnxruntime backend: vision, embedding and decoder ONNX parts behind the Backend protocol.

Everything model-specific comes from the manifest (edgevlm/manifest/schema.py): the text section's
shape and position offset, the tokenizer's image token id, the vision section and each part's
binding (KV names, masks and their sliding windows, logits index, derived vision inputs). No torch
is imported here.

KV cache: one float32 buffer per layer and per key/value, [1, max_context, kv_heads, head_dim],
allocated once. Each forward binds rows [0, n_past) as the past input (a zero-copy view) and binds
rows [n_past, n_past+T) as the present output, so onnxruntime writes the new keys/values in place.
A sliding-window layer (Gemma 2/3 local layers) is bound only the rows its window can still see
(manifest ``layer_masks``), so at long context it neither copies nor attends over rows it would mask.

A decode step (one token) allocates nothing: its token id, embedding row, position ids and logits live
in buffers bound once, and its mask is a view of one zero row (one query row masks nothing: every
bound key is causal and inside its window). Rebinding the KV rows goes through onnxruntime's C
binding with one cached device. Together: 0.14 to 0.19 ms less per step on tiny models, 1.35 to
1.58x their step time (benchmarks/README.md, "Levers").

Linear-attention (recurrent) layers hold no KV rows but fixed-size states (ort_states.py: two buffers
per state, allocated once, swapped after each run). Their cache cannot be rewound row by row: a
snapshot copies the states, and ``rewind`` goes back only to 0 or to the point of the last snapshot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from ...errors import BundleError
from ...manifest import Manifest, Part, inside
from ..backend import CacheSnapshot, KVCacheMixin, check_tokens, image_rows, position_ids, recurrent_rewind_error
from .ort_vision import encode_chunks
from .ort_masks import attention_bias, first_visible_key
from .ort_providers import resolve_providers
from .ort_states import RecurrentStates
from .prefill_chunks import PREFILL_CHUNK, prefill_spans

RECURRENT = "linear_attention"  # the layer type whose cache is a recurrent state, not KV rows


OPT_LEVELS = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
               "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
               "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
               "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}


def open_session(bundle: Path, part: Part, providers: list[str], threads: int | None) -> ort.InferenceSession:
    """One part's session, with the checks and options every ONNX part gets (also GGUF bundles' vision part)."""
    path = inside(bundle, part.file, "part file")
    if not path.is_file():
        raise BundleError(f"{path}: the ONNX file of this part is missing. Re-copy or re-export the bundle.")
    if part.runtime.get("graph") == "fused" and _version(ort.__version__) < (1, 23):
        raise BundleError(f"{path}: this decoder is the fused graph (opset 23 Attention), which needs onnxruntime "
                          f">= 1.23; this is {ort.__version__}. Upgrade (pip install -U onnxruntime) or re-export "
                          "with --decoder-graph portable.")
    options = ort.SessionOptions()
    # A part may ask for a lower level: onnxruntime 1.32 segfaults creating a session for an fp16
    # SigLIP graph at ORT_ENABLE_ALL (fine at "extended"); the quantizer records that in the part.
    level = part.runtime.get("ort_graph_optimization", "all")
    options.graph_optimization_level = OPT_LEVELS[level]
    if threads:
        options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=options, providers=providers)


class _Binder:
    """Binds float32 CPU buffers by address. onnxruntime's public ``IOBinding.bind_input`` builds a device
    object on every call (~1.5 of its ~2.8 us); a decode step rebinds 4 buffers per layer, so the C
    binding with one cached device is used where this onnxruntime has it (its Python wrapper adds only
    WebGPU graph-capture bookkeeping), the public one otherwise."""

    def __init__(self, binding: Any):
        self.public = binding
        try:
            from onnxruntime.capi.onnxruntime_inference_collection import OrtDevice

            self.raw, self.device = binding._iobinding, OrtDevice.make("cpu", 0)._get_c_device()
        except (AttributeError, ImportError):
            self.raw = self.device = None

    def input(self, name: str, shape: list[int], address: int) -> None:
        if self.raw is not None:
            self.raw.bind_input(name, self.device, np.float32, shape, address)
        else:
            self.public.bind_input(name, "cpu", 0, np.float32, shape, address)

    def output(self, name: str, shape: list[int], address: int) -> None:
        if self.raw is not None:
            self.raw.bind_output(name, self.device, np.float32, shape, address)
        else:
            self.public.bind_output(name, "cpu", 0, np.float32, shape, address)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(".")[:2] if x.isdigit())


class OrtBackend(KVCacheMixin):
    def __init__(self, bundle_dir: str | Path, manifest: Manifest, device: str = "cpu", threads: int | None = None):
        self.bundle = Path(bundle_dir)
        self.providers = resolve_providers(device)
        parts = manifest.parts
        for name in ("embedding", "decoder"):
            if name not in parts:
                raise BundleError(f"{self.bundle}: the manifest has no {name!r} part, which the onnx backend needs. "
                                  "Re-export with --format onnx.")
        self.embedding = open_session(self.bundle, parts["embedding"], self.providers, threads)
        self.decoder = open_session(self.bundle, parts["decoder"], self.providers, threads)
        self.vision = open_session(self.bundle, parts["vision"], self.providers, threads) if "vision" in parts else None
        self.vision_info = manifest.vision
        self.vision_derived = parts["vision"].binding.get("derived_inputs", {}) if "vision" in parts else {}
        self.image_token_id = manifest.tokenizer.image_token_id

        text, dec = manifest.text, parts["decoder"].binding
        self.max_context = int(text.max_context)
        self.prefill_chunk = PREFILL_CHUNK  # tokens per prefill run (prefill_chunks.py)
        self.n_past = 0
        self.n_layers = int(text.num_layers)
        self.vocab = int(text.vocab_size)
        shape = (1, self.max_context, int(text.num_kv_heads), int(text.head_dim))
        self._row_bytes = int(np.prod(shape[2:])) * 4
        types = list(text.layer_types) or ["full_attention"] * self.n_layers
        kv_layers = [i for i, kind in enumerate(types) if kind != RECURRENT]
        recurrent = [i for i, kind in enumerate(types) if kind == RECURRENT]
        # The caches, allocated once per session: KV rows of the attention layers, states of the recurrent ones.
        self._keys = [np.zeros(shape, np.float32) for _ in kv_layers]
        self._values = [np.zeros(shape, np.float32) for _ in kv_layers]
        self._states = RecurrentStates(dec["states"], recurrent) if recurrent else None
        self._mark: CacheSnapshot | None = None  # the last snapshot of a recurrent cache (what rewind may return to)
        self._blocks = np.full(self.max_context, -1, np.int32)  # block id of every cached row
        kv = dec["kv"]
        self._kv_names = [(kv["past_key"] % i, kv["past_value"] % i, kv["present_key"] % i, kv["present_value"] % i)
                          for i in kv_layers]
        self._masks: dict[str, int | None] = dict(dec["masks"])
        # Bundles exported before ``layer_masks`` existed: every layer and mask in full (correct, just slower).
        layer_masks = [(dec.get("layer_masks") or [None] * self.n_layers)[i] for i in kv_layers]
        self._windowed = {name: window for name, window in self._masks.items() if name in layer_masks}
        # (past input, present output, buffer address, the layer's mask) for every layer's keys and values.
        self._kv_row = list(shape[2:])
        self._kv_bindings: list[tuple[str, str, int, str | None]] = []
        for (past_k, past_v, present_k, present_v), k, v, mask in zip(self._kv_names, self._keys, self._values,
                                                                       layer_masks):
            self._kv_bindings += [(past_k, present_k, k.ctypes.data, mask), (past_v, present_v, v.ctypes.data, mask)]
        self._mask_value = float(dec.get("mask_value", np.finfo(np.float32).min))
        self._offset = int(text.position_offset)
        self._streams = int(text.position_streams)
        self._logits_input = dec.get("logits_index", "logits_index")
        self._binding = self.decoder.io_binding()
        self._bind = _Binder(self._binding)
        self._last_index = np.zeros(1, np.int64)
        self._logits1 = np.empty((1, 1, self.vocab), np.float32)  # decode-step logits, reused
        # Decode-step buffers, bound once (the embedding's output included) and rewritten in place.
        self._zero_mask = np.zeros(self.max_context, np.float32)
        self._positions1 = np.zeros((self._streams, 1, 1) if self._streams > 1 else (1, 1), np.int64)
        self._ids1 = np.zeros((1, 1), np.int64)
        self._embeds1 = self.embed(np.zeros(1, np.int64))  # [1, 1, D], D as the embedding part gives it
        self._embed_binding = self.embedding.io_binding()
        self._embed_binding.bind_cpu_input("input_ids", self._ids1)
        self._embed_binding.bind_output(self.embedding.get_outputs()[0].name, "cpu", 0, np.float32,
                                        list(self._embeds1.shape), self._embeds1.ctypes.data)

    # -- images ---------------------------------------------------------------------------------
    def encode_images(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Chunks -> features [n, tokens, hidden]. Sliced images: chunks of equal grid run as one batch,
        cropped to their own length (no padding compute); fixed-size images run in batches."""
        if self.vision is None:
            raise BundleError(f"{self.bundle}: this bundle has no vision part, so it cannot take images.")
        return encode_chunks(lambda feeds: self.vision.run(None, feeds)[0], inputs, self.vision_info,
                             self.vision_derived)

    # -- text -------------------------------------------------------------------------------------
    def embed(self, input_ids: np.ndarray) -> np.ndarray:
        """int64 [T] -> float32 [1, T, hidden]."""
        return self.embedding.run(None, {"input_ids": np.asarray(input_ids, np.int64)[None]})[0]

    def forward(self, input_ids: np.ndarray, features: np.ndarray | None = None,
                block_ids: np.ndarray | None = None, positions: np.ndarray | None = None,
                all_logits: bool = False) -> np.ndarray:
        ids = check_tokens(input_ids, self.n_past, self.max_context, block_ids)
        if len(ids) == 1 and features is None and not all_logits and ids[0] != self.image_token_id:
            return self._step(int(ids[0]), block_ids, positions)
        if len(ids) > self.prefill_chunk and not all_logits:
            return self._prefill_in_chunks(ids, features, block_ids, positions)
        return self._forward(ids, features, block_ids, positions, all_logits)

    def _prefill_in_chunks(self, ids: np.ndarray, features: np.ndarray | None, block_ids: np.ndarray | None,
                           positions: np.ndarray | None) -> np.ndarray:
        """A long prompt in spans of at most PREFILL_CHUNK tokens (prefill_chunks.py) -> the last logits."""
        rows = None
        if features is not None:  # [K, hidden] in placeholder order; checked whole before anything runs
            rows = image_rows(ids, self.image_token_id, features, np.asarray(features).shape[-1])[1]
        cursor, logits = 0, None
        for start, end in prefill_spans(block_ids, len(ids), self.prefill_chunk):
            n = 0 if rows is None else int((ids[start:end] == self.image_token_id).sum())
            logits = self._forward(ids[start:end], rows[cursor:cursor + n] if n else None,
                                   None if block_ids is None else np.asarray(block_ids)[start:end],
                                   None if positions is None else np.asarray(positions)[..., start:end], False)
            cursor += n
        return logits

    def _forward(self, ids: np.ndarray, features: np.ndarray | None, block_ids: np.ndarray | None,
                 positions: np.ndarray | None, all_logits: bool) -> np.ndarray:
        t, past = len(ids), self.n_past
        embeds = self.embed(ids)  # [1, T, D]
        where, rows = image_rows(ids, self.image_token_id, features, embeds.shape[-1])
        embeds[0, where] = rows
        self._blocks[past:past + t] = -1 if block_ids is None else np.asarray(block_ids, np.int32)

        b = self._binding
        # Bound numpy inputs must outlive the run: keep references until it returns.
        keep = {"inputs_embeds": embeds,
                # [1, T], or [S, 1, T] for S position streams (M-RoPE)
                "position_ids": position_ids(positions, past, t, self._offset, self._streams)[..., None, :]}
        first = {name: first_visible_key(past, self._windowed.get(name)) for name in self._masks}
        first[None] = 0
        for name, window in self._masks.items():
            keep[name] = attention_bias(self._blocks, past, t, window, self._mask_value, first_key=first[name])
        if all_logits:
            index = np.arange(t, dtype=np.int64)
            logits = np.empty((1, t, self.vocab), np.float32)
        else:
            self._last_index[0] = t - 1
            index, logits = self._last_index, self._logits1
        keep[self._logits_input] = index
        for name, array in keep.items():
            b.bind_cpu_input(name, array)
        self._run(past, t, first, logits)
        return logits[0].copy() if all_logits else logits[0, 0].copy()

    def _step(self, token: int, block_ids: np.ndarray | None, positions: np.ndarray | None) -> np.ndarray:
        """forward() of one token without features: nothing allocated, nothing but the KV rows rebound."""
        past = self.n_past
        self._ids1[0, 0] = token
        self.embedding.run_with_iobinding(self._embed_binding)  # -> self._embeds1 [1, 1, D]
        self._blocks[past] = -1 if block_ids is None else int(np.asarray(block_ids).reshape(-1)[0])
        self._positions1[...] = position_ids(positions, past, 1, self._offset, self._streams).reshape(
            self._positions1.shape)  # [1, 1] or [S, 1, 1]
        b = self._binding
        b.bind_cpu_input("inputs_embeds", self._embeds1)
        b.bind_cpu_input("position_ids", self._positions1)
        self._last_index[0] = 0
        b.bind_cpu_input(self._logits_input, self._last_index)
        first = {name: first_visible_key(past, self._windowed.get(name)) for name in self._masks}
        first[None] = 0
        for name, window in self._masks.items():
            if window is None or name in self._windowed:  # one query row: every bound key is visible
                self._bind.input(name, [1, 1, 1, past + 1 - first[name]], self._zero_mask.ctypes.data)
            else:  # a bundle without layer_masks binds all rows: the window is in the mask
                b.bind_cpu_input(name, attention_bias(self._blocks, past, 1, window, self._mask_value))
        self._run(past, 1, first, self._logits1)
        return self._logits1[0, 0].copy()

    def _run(self, past: int, t: int, first: dict[str | None, int], logits: np.ndarray) -> None:
        """Bind the logits and every layer's KV rows (past in, the T new rows out, in place), then run."""
        self._bind.output("logits", list(logits.shape), logits.ctypes.data)
        new_shape, row_bytes, kv_row = [1, t, *self._kv_row], self._row_bytes, self._kv_row
        for name_in, name_out, base, mask in self._kv_bindings:
            row = first[mask]
            self._bind.input(name_in, [1, past - row, *kv_row], base + row * row_bytes)
            self._bind.output(name_out, new_shape, base + past * row_bytes)
        if self._states is not None:
            self._states.bind(self._binding)
        self.decoder.run_with_iobinding(self._binding)
        if self._states is not None:
            self._states.advance()
        self.n_past = past + t

    def rewind(self, n_keep: int) -> None:
        if not 0 <= n_keep <= self.n_past:
            raise ValueError(f"rewind({n_keep}) outside [0, {self.n_past}]")
        if self._states is not None and n_keep != self.n_past:
            if n_keep == 0:
                self._states.reset()
            elif self._mark is not None and self._mark.n_past == n_keep:
                self._states.load(self._mark.states)
            else:
                raise recurrent_rewind_error(n_keep, self.n_past)
        self._forget(n_keep)

    def _forget(self, n_keep: int) -> None:
        self.n_past = n_keep  # rows from n_keep on are overwritten by the next forward
        self._blocks[n_keep:] = -1
        if self._mark is not None and n_keep < self._mark.n_past:
            self._mark = None  # its states describe tokens no longer in the cache

    def snapshot(self) -> CacheSnapshot:
        """The cache's length, and for recurrent layers a copy of their states (also kept for ``rewind``)."""
        if self._states is None:
            return CacheSnapshot(self.n_past)
        self._mark = CacheSnapshot(self.n_past, self._states.copy())
        return self._mark

    def restore(self, snapshot: CacheSnapshot) -> None:
        if snapshot.n_past > self.n_past:
            raise ValueError(f"cannot restore a snapshot of {snapshot.n_past} tokens into a cache holding "
                             f"{self.n_past}: its rows were overwritten")
        if self._states is not None:
            if snapshot.states is None:
                raise ValueError("this snapshot holds no recurrent states (taken from another backend?)")
            self._states.load(snapshot.states)
        self._forget(snapshot.n_past)

    def close(self) -> None:
        self.embedding = self.decoder = self.vision = None  # type: ignore[assignment]
        self._keys, self._values, self._states = [], [], None
