"""MiniCPM-V 4.6 in llama.cpp: our qwen35 text GGUF against llama.cpp's own converter (tensors, metadata and
greedy tokens in stock llama.cpp), the GGUF bundle through the runtime's llama.cpp backend (export parity,
chat, the recurrent state's snapshot / rewind), and mtmd's image features from our mmproj against our ONNX
vision part.

llama.cpp's converter comes from the llama-cpp-python sdist (``pip download --no-deps --no-binary :all:
llama-cpp-python==0.3.36``, unpacked in /work/wt/_lcp or pointed to by EDGEVLM_LLAMA_CPP_SRC). Its
tokenizer check refuses the tiny BPE (an unknown hash); a wrapper names the pre-tokenizer our writer chose.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
llama_cpp = pytest.importorskip("llama_cpp")

import edgevlm  # noqa: E402
from edgevlm.errors import CheckpointError, EdgeVLMError  # noqa: E402
from edgevlm.export import export  # noqa: E402
from edgevlm.export.gguf.text import export_text_gguf  # noqa: E402
from edgevlm.export.gguf.tokenizer import pre_tokenizer_name, read_tokenizer_files  # noqa: E402
from edgevlm.families import load_reference  # noqa: E402
from tests.test_minicpmv46_mmproj import llama_cpp_source, read_gguf  # noqa: E402
from tests.test_processing_slicing import synthetic_image  # noqa: E402

pytestmark = pytest.mark.gguf

# Runs llama.cpp's converter with its tokenizer-hash check answered by the pre-tokenizer name given.
WRAPPER = """
import runpy, sys
src, pre = sys.argv[1], sys.argv[2]
sys.path.insert(0, src)
import conversion.base as base
base.TextModel.get_vocab_base_pre = lambda self, tokenizer: pre
sys.argv = [src + "/convert_hf_to_gguf.py"] + sys.argv[3:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.fixture(scope="module")
def texts(tiny, tmp_path_factory):
    """(reference, checkpoint, our text GGUF, llama.cpp's converter's text GGUF, converter source)."""
    src = llama_cpp_source()
    if src is None:
        pytest.skip("llama.cpp's converter not found: set EDGEVLM_LLAMA_CPP_SRC to the sdist's vendor/llama.cpp")
    ckpt = tiny("minicpmv-4.6")
    ref = load_reference(ckpt)
    out = tmp_path_factory.mktemp("text-gguf")
    export_text_gguf(ref, ckpt, out / "ours.gguf", "fp32")
    pre = pre_tokenizer_name(read_tokenizer_files(ckpt)[0])
    run = subprocess.run([sys.executable, "-c", WRAPPER, str(src), pre, str(ckpt), "--outfile", str(out / "theirs.gguf"),
                          "--outtype", "f32", "--no-mtp"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(src / "gguf-py")}, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return ref, ckpt, out / "ours.gguf", out / "theirs.gguf", src


def test_text_gguf_equals_llama_cpp_converter(texts):
    _, _, ours, theirs, src = texts
    meta_o, tensors_o = read_gguf(ours, src / "gguf-py")
    meta_t, tensors_t = read_gguf(theirs, src / "gguf-py")
    assert sorted(tensors_o) == sorted(tensors_t)
    for name, (qtype, shape, data) in tensors_t.items():
        assert tensors_o[name][:2] == (qtype, shape), name
        np.testing.assert_array_equal(tensors_o[name][2], data, err_msg=name)
    keys = {k for k in meta_t if k.startswith(("qwen35.", "tokenizer.ggml."))} | {"general.architecture"}
    keys -= {"tokenizer.ggml.padding_token_id"}  # ours names no pad id the text model never reads
    missing = keys - set(meta_o)
    assert not missing, missing
    for key in sorted(keys):
        a, b = meta_o[key], meta_t[key]
        same = np.allclose(a, b) if isinstance(b, float) or (isinstance(b, list) and b and isinstance(b[0], float)) \
            else a == b
        assert same, (key, a, b)
    print(f"{len(tensors_o)} tensors and {len(keys)} keys equal to llama.cpp's converter "
          f"(recurrent layers {meta_o['qwen35.attention.recurrent_layers']})")


def _greedy_in_stock_llama_cpp(path: Path, ids: list[int], n: int = 16) -> list[int]:
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=256, n_threads=2, verbose=False)
    try:
        tokens: list[int] = []
        for token in llm.generate(ids, temp=0.0):
            if len(tokens) == n:
                break
            tokens.append(int(token))
        return tokens
    finally:
        llm.close()


def test_both_text_ggufs_give_transformers_greedy_tokens_in_llama_cpp(texts):
    ref, ckpt, ours, theirs, _ = texts
    from edgevlm.processing.tokenizer import Tokenizer

    ids = Tokenizer.from_file(ckpt / "tokenizer.json").encode(
        "<|im_start|>user\nWhat is in the picture?<|im_end|>\n<|im_start|>assistant\n").tolist()
    want = ref.greedy(torch.tensor([ids]), None, 16)
    got_ours, got_theirs = _greedy_in_stock_llama_cpp(ours, ids), _greedy_in_stock_llama_cpp(theirs, ids)
    print(f"transformers {want}\nours in llama.cpp {got_ours}\nllama.cpp's conversion {got_theirs}")
    assert got_ours == got_theirs == want


@pytest.fixture(scope="module")
def bundle(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("gguf-bundle") / "b"
    return export(tiny("minicpmv-4.6"), out, format="gguf", mmproj_dtype="fp32", progress=None), out


def test_gguf_bundle_parity_and_chat(bundle):
    """The export parity check (llama.cpp backend: image rows as embeddings with 4 position sections) and a
    two-turn chat that equals one prompt; the recurrent state rewinds only to 0 or the last snapshot."""
    manifest, out = bundle
    report = manifest.validation
    print({k: report[k] for k in ("vision", "logits", "greedy")})
    assert report["greedy"]["equal"] and report["logits"]["max_abs"] <= 1e-3
    assert set(manifest.parts) == {"text", "vision", "mmproj"}
    vlm = edgevlm.load(out)
    chat = vlm.chat()
    chat.send("What is in the picture?", images=[synthetic_image(700, 500, 1)], max_new_tokens=6)
    second = chat.send("And what colour is it?", max_new_tokens=8)
    backend = vlm.backend
    n = backend.n_past
    snap = backend.snapshot()
    after = backend.forward(np.array([7, 8, 9]))
    with pytest.raises(EdgeVLMError, match="recurrent"):
        backend.rewind(n + 1)
    backend.rewind(n)  # the last snapshot's point
    np.testing.assert_allclose(backend.forward(np.array([7, 8, 9])), after, atol=1e-5)
    backend.restore(snap)
    segments = chat.conv.fed[: len(chat.conv.fed) - len(second.token_ids) + 1]
    ids = np.concatenate([s[0] for s in segments])
    rows = np.concatenate([s[1] for s in segments if s[1] is not None])
    backend.rewind(0)
    vlm._owner = None
    logits, tokens = backend.forward(ids, rows), []
    for _ in second.token_ids:
        tokens.append(int(logits.argmax()))
        logits = backend.forward(np.array([tokens[-1]]))
    assert tokens == second.token_ids


@pytest.mark.parametrize("size", [(700, 500), pytest.param((448, 448), marks=pytest.mark.slow)])
def test_mtmd_features_from_our_mmproj_equal_our_onnx_vision(bundle, size):
    """llama.cpp's mtmd slices the raw image itself and runs clip.cpp's minicpmv4_6 graph on our mmproj;
    per chunk its features equal our ONNX vision part's (where both slicers agree)."""
    from edgevlm.processing.images import load_image
    from edgevlm.runtime.backends.llamacpp_mtmd import MtmdImageEncoder
    from edgevlm.runtime.images import prepare_image

    manifest, out = bundle
    vlm = edgevlm.load(out)
    image = synthetic_image(*size, 3)
    prepared = prepare_image(load_image(image), vlm.processor)
    ours = vlm.backend.encode_images(prepared.inputs)  # [chunks, rows_max, D], zero-padded
    counts = (prepared.plan.overview_tokens, *prepared.plan.slice_tokens)
    encoder = MtmdImageEncoder(out / manifest.parts["text"].file, out / manifest.parts["mmproj"].file)
    try:
        theirs = encoder.encode(np.asarray(image.convert("RGB")))
    finally:
        encoder.close()
    assert [len(t) for t in theirs] == list(counts)
    cosines = [float((a * b).sum() / np.linalg.norm(a) / np.linalg.norm(b))
               for a, b in ((ours[i, :n].reshape(-1), theirs[i].reshape(-1)) for i, n in enumerate(counts))]
    print(f"{size}: {len(counts)} chunks, cosine per chunk {np.round(cosines, 6).tolist()}")
    assert min(cosines) >= 0.999


def test_gguf_export_of_mrope_model_is_refused(tiny, tmp_path):
    with pytest.raises(CheckpointError, match="position streams"):
        export(tiny("minicpmv-4.7"), tmp_path / "b", format="gguf", progress=None)
    assert not (tmp_path / "b").exists()
