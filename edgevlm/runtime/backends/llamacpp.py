"""The llama.cpp backend (llama-cpp-python's low-level C API) behind the Backend protocol.

The text part is a stock GGUF (export/gguf/text.py). Tokens go to llama.cpp as ids, except rows it
must receive as embeddings: image features, and every token of a bidirectional block, which is
decoded as ONE batch with causal attention switched off (``llama_set_causal_attn``). llama.cpp's
KV mask then lets the block see all of itself and everything before it: the exact prefix-LM /
image-block mask (techspec §3, §4.8). What is model-specific is data from the manifest: the
tokenizer's ``image_token_id`` and the text part's input scales (see export/gguf/text.input_scales).

KV cache: allocated once for ``max_context`` tokens; ``swa_full`` keeps sliding-window layers'
cells too, so ``rewind`` to any earlier position stays exact. A model with recurrent (linear-attention)
layers keeps their states in llama.cpp's hybrid memory: it cannot drop positions token by token, so
``rewind`` goes back to 0 or to the last ``snapshot`` (a copy of the sequence's state), else refuses.
M-RoPE architectures (llama.cpp's qwen2vl, and qwen35 which numbers even 1-D models with 4 position
sections) take embedding rows with one position per section (llamacpp_batch.py): 3-stream positions
[3, T] (Qwen2-VL: temporal, height, width) go in as given; token-id rows take one position, so text
tokens must have the same id in every stream. llama.cpp removes cache cells by (stream-0) position,
which an image's rows share, so the backend keeps each row's stream-0 position to drop by index.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

import llama_cpp as L
from llama_cpp import _logger as _llama_logger

from ...errors import BundleError, DeviceError, PromptError
from ..backend import CacheSnapshot, KVCacheMixin, check_tokens, position_ids, recurrent_rewind_error
from ..backend import image_rows as image_positions
from ...manifest import Manifest, inside
from .llamacpp_amx import model_params
from .llamacpp_batch import Batch as _Batch, position_sections
from .llamacpp_embd import TokenEmbeddings

_DEVICES = ("cpu", "auto")


def _check(code: int, what: str) -> None:
    if code != 0:
        raise RuntimeError(f"llama.cpp {what} failed with code {code}")


class LlamaCppBackend(KVCacheMixin):
    def __init__(self, bundle_dir: str | Path, manifest: Manifest, device: str = "cpu", threads: int | None = None,
                 max_context: int | None = None, kv_type: str | None = None, batch: int | None = None,
                 verbose: bool = False):
        if device not in _DEVICES:
            raise DeviceError(f"device {device!r} is not available for GGUF bundles in this build (CPU llama.cpp); "
                              "use device='cpu'.")
        self.bundle = Path(bundle_dir)
        parts = manifest.parts
        if "text" not in parts:
            raise BundleError(f"{self.bundle}: the manifest has no 'text' part, which the llama.cpp backend needs. "
                              "Re-export with --format gguf.")
        text = parts["text"]
        path = inside(self.bundle, text.file, "part file")
        if not path.is_file():
            raise BundleError(f"{path}: the GGUF text model is missing. Re-copy or re-export the bundle.")
        self.image_token_id = manifest.tokenizer.image_token_id
        self.n_embd = int(manifest.text.hidden_size)
        self.embd_input_scale = np.float32(text.runtime.get("embd_input_scale", 1.0))
        self.max_context = int(max_context or manifest.text.max_context)
        self.n_past = 0
        # Position streams per token (M-RoPE: 3). Token-id rows take one position (text: the same in every stream).
        self._streams = int(manifest.text.position_streams)
        # stream-0 position of every cached row: llama.cpp removes cache cells by position, not by index
        self._first_pos = np.zeros(self.max_context + 1, np.int64)
        threads = int(threads or os.cpu_count() or 1)

        _llama_logger.set_verbose(verbose)
        L.llama_backend_init()
        self.model = L.llama_model_load_from_file(str(path).encode(), model_params(n_gpu_layers=0))
        if not self.model:
            raise BundleError(f"{path}: llama.cpp could not load this GGUF (damaged, or written for a newer "
                              "llama.cpp). Re-export, or upgrade llama-cpp-python.")
        self.vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(self.model))
        # the ids llama.cpp reads per embedding row: 4 for its M-RoPE archs (llamacpp_batch.py), else 1
        self._row_positions = position_sections(self.model)
        if self._streams > self._row_positions:
            self.close()
            raise BundleError(f"{self.bundle}: the text model takes {self._streams} position streams but its GGUF "
                              f"part reads {self._row_positions} per row; re-export the bundle with --format gguf.")
        cparams = L.llama_context_default_params()
        cparams.n_ctx = self.max_context
        # A bidirectional block must be one ubatch (non-causal attention does not span ubatches), so
        # non-causal bundles get room for an image block plus a prefix; otherwise llama.cpp's default
        # 512 keeps the compute buffer (which grows with the ubatch) small.
        vision = manifest.vision
        block = int(vision.tokens_per_chunk) if vision is not None and manifest.attention != "causal" else 0
        self.n_batch = min(self.max_context, int(batch or max(512, block + 256)))
        cparams.n_batch = cparams.n_ubatch = self.n_batch
        cparams.n_seq_max = 1
        cparams.n_threads = cparams.n_threads_batch = threads
        cparams.swa_full = True
        # f32 bundles keep an f32 KV cache, so they reproduce the reference to ~1e-5; others use
        # llama.cpp's usual f16 cache. Float bundles run plain attention (the path the parity tests
        # measure); quantized ones let llama.cpp choose (flash attention where it helps).
        exact = (kv_type or ("f32" if text.dtype == "fp32" else "f16")) == "f32"
        cparams.type_k = cparams.type_v = L.GGML_TYPE_F32 if exact else L.GGML_TYPE_F16
        float_weights = text.dtype in ("fp32", "fp16")
        cparams.flash_attn_type = (L.LLAMA_FLASH_ATTN_TYPE_DISABLED if float_weights
                                   else L.LLAMA_FLASH_ATTN_TYPE_AUTO)
        self.ctx = L.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            raise BundleError(f"{path}: llama.cpp could not create a context of {self.max_context} tokens "
                              "(out of memory?). Pass a smaller max_context.")
        self.memory = L.llama_get_memory(self.ctx)
        self.recurrent = bool(L.llama_model_is_recurrent(self.model) or L.llama_model_is_hybrid(self.model))
        self._mark: CacheSnapshot | None = None  # the last snapshot of a recurrent model (what rewind may return to)
        self._tokens = _Batch(self.n_batch)
        self._rows = _Batch(self.n_batch, self.n_embd, self._row_positions)
        self._token_embd = None  # TokenEmbeddings, opened on first bidirectional block with text
        self._token_embd_args = (path, float(text.runtime.get("token_scale", 1.0)), float(self.embd_input_scale))
        self._vision = None
        if "vision" in parts and parts["vision"].format == "onnx":
            from .llamacpp_vision import OnnxVision

            self._vision = OnnxVision(self.bundle, parts["vision"], manifest.vision, threads)

    # -- images ---------------------------------------------------------------------------------
    def encode_images(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        if self._vision is None:
            raise BundleError(f"{self.bundle}: this bundle has no vision part, so it cannot take images.")
        return self._vision.encode(inputs)

    # -- text -------------------------------------------------------------------------------------
    def _segments(self, ids: np.ndarray, image_rows: np.ndarray, blocks: np.ndarray) -> list[tuple[int, int, bool, bool]]:
        """[(start, end, as_embeddings, bidirectional)]: maximal runs fed to llama.cpp the same way."""
        as_rows = image_rows | (blocks >= 0)
        out: list[tuple[int, int, bool, bool]] = []
        start = 0
        for t in range(1, len(ids) + 1):
            if t == len(ids) or as_rows[t] != as_rows[start] or blocks[t] != blocks[start]:
                out.append((start, t, bool(as_rows[start]), bool(blocks[start] >= 0)))
                start = t
        seen = [blocks[s] for s, _, _, bidir in out if bidir]
        if len(seen) != len(set(seen)):
            raise PromptError("a bidirectional block's tokens are not contiguous; llama.cpp can only decode a "
                              "block given as one run of tokens.")
        return out

    def _embedding_rows(self, ids: np.ndarray, image_rows: np.ndarray, features: np.ndarray, first_image: int
                        ) -> np.ndarray:
        """Rows for ids (a segment): image features in order, token_embd rows for text, scaled for llama.cpp."""
        rows = np.empty((len(ids), self.n_embd), np.float32)
        n_img = int(image_rows.sum())
        if n_img:
            rows[image_rows] = features[first_image:first_image + n_img] / self.embd_input_scale
        if n_img < len(ids):
            if self._token_embd is None:
                self._token_embd = TokenEmbeddings(*self._token_embd_args)
            rows[~image_rows] = self._token_embd.rows(ids[~image_rows])
        return rows

    def _decode(self, batch: _Batch, positions: np.ndarray, want: bool | str) -> None:
        batch.fill(positions, want)
        code = L.llama_decode(self.ctx, batch.raw)
        if code != 0:
            self._drop_from(self.n_past)  # leave the cache as before this call
            raise PromptError(f"llama.cpp could not decode {positions.shape[-1]} tokens at position "
                              f"{positions.reshape(-1)[0]} (code {code}); the KV cache is full or the batch is too large.")

    def _drop_from(self, n_keep: int) -> None:
        """Forget cached rows from index ``n_keep`` on (llama.cpp removes by position: from that row's)."""
        first = self._first_pos[n_keep]
        if not L.llama_memory_seq_rm(self.memory, 0, int(first), -1):
            raise RuntimeError(f"llama.cpp could not drop cached positions from {first}")

    def _logits(self, n_out: int) -> np.ndarray:
        ptr = L.llama_get_logits(self.ctx)
        return np.ctypeslib.as_array(ptr, shape=(n_out, self.vocab)).copy()

    def forward(self, input_ids: np.ndarray, features: np.ndarray | None = None,
                block_ids: np.ndarray | None = None, positions: np.ndarray | None = None,
                all_logits: bool = False) -> np.ndarray:
        ids = check_tokens(input_ids, self.n_past, self.max_context, block_ids,
                           fix="load with a larger max_context")
        t, past = len(ids), self.n_past
        # RoPE attention depends only on position differences, so llama.cpp numbers rows from 0 whatever
        # the model's position offset; explicit positions are passed as given ([T], or [S, T] for M-RoPE).
        pos = position_ids(positions, past, t, 0, self._streams)
        pos0 = pos if pos.ndim == 1 else pos[0]  # token-id rows: one position (all streams equal for text)
        if past and pos0[0] <= self._first_pos[past - 1] and self._streams > 1:
            raise PromptError(f"positions must continue after the cached ones ({self._first_pos[past - 1]}); "
                              f"got {pos0[0]}. Pass the conversation's next position.")
        self._first_pos[past:past + t] = pos0
        image_rows, feats = image_positions(ids, self.image_token_id, features, self.n_embd)
        n_rows = len(feats)
        blocks = np.full(t, -1, np.int32) if block_ids is None else np.asarray(block_ids, np.int32).reshape(-1)
        token_rows = ~image_rows & (blocks < 0)  # fed as ids, so llama.cpp gives them one position in every stream
        if pos.ndim == 2 and (pos[:, token_rows] != pos0[token_rows]).any():
            raise PromptError("these positions give text tokens different ids per stream, which llama.cpp cannot take "
                              "for token ids; run this model from an ONNX or Core ML bundle.")

        # Fast path: one decode step (the generation loop).
        if t == 1 and not n_rows and blocks[0] < 0:
            self._tokens.token[0] = ids[0]
            self._decode(self._tokens, pos0, True)
            self.n_past = past + 1
            return self._logits(1)[0]

        outputs: list[np.ndarray] = []
        image_cursor = 0
        try:
            for start, end, as_rows, bidir in self._segments(ids, image_rows, blocks):
                if bidir and end - start > self.n_batch:
                    raise PromptError(f"a bidirectional block of {end - start} tokens exceeds llama.cpp's batch of "
                                      f"{self.n_batch}; shorten the prompt or load with batch={end - start}.")
                seg_rows = (self._embedding_rows(ids[start:end], image_rows[start:end], feats, image_cursor)
                            if as_rows else None)
                image_cursor += int(image_rows[start:end].sum())
                if bidir:
                    L.llama_set_causal_attn(self.ctx, False)
                try:
                    for s in range(start, end, self.n_batch):
                        e = min(end, s + self.n_batch)
                        last = e == t
                        want: bool | str = "all" if all_logits else last
                        if as_rows:
                            self._rows.embd[: e - s] = seg_rows[s - start:e - start]
                            self._decode(self._rows, pos[..., s:e], want)
                        else:
                            self._tokens.token[: e - s] = ids[s:e]
                            self._decode(self._tokens, pos0[s:e], want)
                        if all_logits:
                            outputs.append(self._logits(e - s))
                        elif last:
                            outputs.append(self._logits(1)[0])
                finally:
                    if bidir:
                        L.llama_set_causal_attn(self.ctx, True)
        except Exception:
            self._drop_from(past)
            raise
        self.n_past = past + t
        return np.concatenate(outputs, axis=0) if all_logits else outputs[-1]

    def rewind(self, n_keep: int) -> None:
        if not 0 <= n_keep <= self.n_past:
            raise ValueError(f"rewind({n_keep}) outside [0, {self.n_past}]")
        if self.recurrent and 0 < n_keep < self.n_past:
            if self._mark is None or self._mark.n_past != n_keep:
                raise recurrent_rewind_error(n_keep, self.n_past)
            self.restore(self._mark)
            return
        if 0 < n_keep < self.n_past and self._first_pos[n_keep] == self._first_pos[n_keep - 1]:
            raise ValueError(f"rewind({n_keep}) would cut an image in two (its rows share one position)")
        if n_keep < self.n_past:
            self._drop_from(n_keep)
        self.n_past = n_keep
        if self._mark is not None and n_keep < self._mark.n_past:
            self._mark = None

    def snapshot(self) -> CacheSnapshot:
        """The length; for a recurrent model also a copy of the sequence's state (llama_state_seq_get_data)."""
        if not self.recurrent:
            return CacheSnapshot(self.n_past)
        import ctypes

        size = L.llama_state_seq_get_size(self.ctx, 0)
        data = (ctypes.c_uint8 * size)()
        L.llama_state_seq_get_data(self.ctx, data, size, 0)
        self._mark = CacheSnapshot(self.n_past, data)
        return self._mark

    def restore(self, snapshot: CacheSnapshot) -> None:
        if not self.recurrent:
            return KVCacheMixin.restore(self, snapshot)
        if snapshot.states is None:
            raise ValueError("this snapshot holds no recurrent state (taken from another backend?)")
        L.llama_memory_seq_rm(self.memory, 0, 0, -1)
        if L.llama_state_seq_set_data(self.ctx, snapshot.states, len(snapshot.states), 0) == 0:
            raise RuntimeError("llama.cpp could not restore the sequence state")
        self.n_past = snapshot.n_past

    def close(self) -> None:
        for batch in (getattr(self, "_tokens", None), getattr(self, "_rows", None)):
            if batch is not None:
                batch.free()
        if getattr(self, "ctx", None):
            L.llama_free(self.ctx)
            self.ctx = None
        if getattr(self, "model", None):
            L.llama_model_free(self.model)
            self.model = None
        self._vision = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
