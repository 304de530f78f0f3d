"""llama.cpp's own multimodal path (libmtmd): raw RGB image → mtmd's slicing → image embeddings per chunk.

This is how stock llama.cpp (llama-mtmd-cli, llama-server, llama-cpp-python's chat handlers) runs a
MiniCPM-V bundle's ``mmproj`` GGUF. edgevlm uses it to check the mmproj independently of our
resampler code (tests/test_gguf_mmproj.py) and offers it for callers who want llama.cpp's own image
handling; note its slicing differs from the reference for images with both sides ≤ 448 or area
≤ 448² (techspec §4.5).
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

import llama_cpp as L
from llama_cpp import _logger as _llama_logger
from llama_cpp import mtmd_cpp as M

from ...errors import BundleError
from .llamacpp_amx import model_params


class MtmdImageEncoder:
    """Load a text GGUF + mmproj GGUF; ``encode(rgb)`` gives mtmd's embeddings of every image chunk."""

    def __init__(self, text_gguf: str | Path, mmproj_gguf: str | Path, threads: int = 2, verbose: bool = False):
        # Route mtmd's log through llama-cpp-python's logger, which prints only errors unless verbose.
        _llama_logger.set_verbose(verbose)
        M.mtmd_log_set(_llama_logger.llama_log_callback, ctypes.c_void_p(0))
        M.mtmd_helper_log_set(_llama_logger.llama_log_callback, ctypes.c_void_p(0))
        L.llama_backend_init()
        self.model = L.llama_model_load_from_file(str(text_gguf).encode(), model_params(n_gpu_layers=0))
        if not self.model:
            raise BundleError(f"{text_gguf}: llama.cpp could not load this GGUF.")
        cparams = M.mtmd_context_params_default()
        cparams.use_gpu = False
        cparams.n_threads = threads
        cparams.print_timings = False
        cparams.warmup = False
        self.ctx = M.mtmd_init_from_file(str(mmproj_gguf).encode(), self.model, cparams)
        if not self.ctx:
            raise BundleError(f"{mmproj_gguf}: llama.cpp's mtmd could not load this mmproj.")
        self.n_embd = L.llama_model_n_embd(self.model)
        self.marker = M.mtmd_default_marker()

    def tokenize(self, rgb: np.ndarray, prompt: str = "") -> list[tuple[str, object]]:
        """[(kind, payload)] of mtmd's chunks for ``marker + prompt``: ("text", ids) or ("image", n_tokens)."""
        chunks = self._chunks(rgb, prompt)
        try:
            out = []
            for i in range(M.mtmd_input_chunks_size(chunks)):
                chunk = M.mtmd_input_chunks_get(chunks, i)
                if M.mtmd_input_chunk_get_type(chunk) == M.MTMD_INPUT_CHUNK_TYPE_TEXT:
                    n = ctypes.c_size_t()
                    ptr = M.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(n))
                    out.append(("text", [ptr[j] for j in range(n.value)]))
                else:
                    out.append(("image", M.mtmd_input_chunk_get_n_tokens(chunk)))
            return out
        finally:
            M.mtmd_input_chunks_free(chunks)

    def encode(self, rgb: np.ndarray) -> list[np.ndarray]:
        """uint8 [H, W, 3] -> one float32 [tokens, n_embd] array per image chunk, in mtmd's order."""
        chunks = self._chunks(rgb, "")
        try:
            out = []
            for i in range(M.mtmd_input_chunks_size(chunks)):
                chunk = M.mtmd_input_chunks_get(chunks, i)
                if M.mtmd_input_chunk_get_type(chunk) != M.MTMD_INPUT_CHUNK_TYPE_IMAGE:
                    continue
                n_tokens = M.mtmd_input_chunk_get_n_tokens(chunk)
                if M.mtmd_encode_chunk(self.ctx, chunk) != 0:
                    raise RuntimeError("mtmd_encode_chunk failed")
                ptr = M.mtmd_get_output_embd(self.ctx)
                out.append(np.ctypeslib.as_array(ptr, shape=(n_tokens, self.n_embd)).copy())
            return out
        finally:
            M.mtmd_input_chunks_free(chunks)

    def _chunks(self, rgb: np.ndarray, prompt: str):
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        height, width, _ = rgb.shape
        data = rgb.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8))
        bitmap = M.mtmd_bitmap_init(width, height, data)
        text = (self.marker.decode() + prompt).encode()
        inp = M.mtmd_input_text(text, len(text), False, True)
        chunks = M.mtmd_input_chunks_init()
        bitmaps = (M.mtmd_bitmap_p_ctypes * 1)(bitmap)
        try:
            if M.mtmd_tokenize(self.ctx, chunks, ctypes.byref(inp), bitmaps, 1) != 0:
                M.mtmd_input_chunks_free(chunks)
                raise RuntimeError("mtmd_tokenize failed")
        finally:
            M.mtmd_bitmap_free(bitmap)
        return chunks

    def close(self) -> None:
        if getattr(self, "ctx", None):
            M.mtmd_free(self.ctx)
            self.ctx = None
        if getattr(self, "model", None):
            L.llama_model_free(self.model)
            self.model = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
