"""Text GGUF export (every arch) loaded by stock llama-cpp-python, against the PyTorch reference.

Each tiny checkpoint's text model is exported at f32 and run through ``llama_cpp.Llama`` (the
high-level API every llama-cpp-python user has): first-step logits must match the reference within
1e-3 relative (max |diff| / max |logit|) and 16 greedy tokens must be identical. The tokenizer
metadata is checked by tokenizing with llama.cpp and with the checkpoint's tokenizer.json.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
llama_cpp = pytest.importorskip("llama_cpp")
gguf = pytest.importorskip("gguf")

from edgevlm.export.gguf.text import export_text_gguf, input_scales  # noqa: E402
from edgevlm.export.gguf.tokenizer import is_byte_level  # noqa: E402
from edgevlm.families import TINY_NAMES, load_reference  # noqa: E402
from edgevlm.text_archs import text_arch  # noqa: E402

pytestmark = pytest.mark.gguf

PROMPT = "What is in the image? Describe the image in detail."
TEXTS = ["The quick brown fox jumps over the lazy dog.", "Numbers: 12345 and   spaces\nnew line",
         "<|im_start|>user\nhello<|im_end|>", "<start_of_turn>user\nHi there<end_of_turn>",
         "Das Bild zeigt einen Hund. 写真には猫がいます。 émoji 🙂"]


@pytest.fixture(scope="module")
def exported(tiny, tmp_path_factory):
    """(name, dtype) -> (reference, gguf path, Part), each exported once."""
    cache = {}

    def get(name, dtype="fp32"):
        if (name, dtype) not in cache:
            ckpt = tiny(name)
            ref = cache.get(name) or load_reference(ckpt)
            cache[name] = ref
            path = tmp_path_factory.mktemp(f"gguf-{name}") / f"text-{dtype}.gguf"
            cache[(name, dtype)] = (ref, path, export_text_gguf(ref, ckpt, path, dtype))
        return cache[(name, dtype)]

    return get


def _prompt_ids(tiny, name) -> list[int]:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(tiny(name) / "tokenizer.json")).encode(PROMPT, add_special_tokens=False).ids


def _llama(path, **kw):
    # f32 KV cache and no flash attention: the f32 export is then compared with f32 arithmetic.
    return llama_cpp.Llama(model_path=str(path), n_ctx=256, n_threads=2, logits_all=True, verbose=False,
                           type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32, flash_attn=False, **kw)


@pytest.mark.parametrize("name", TINY_NAMES)
def test_llama_cpp_logits_and_greedy_match_reference(exported, tiny, name):
    ref, path, part = exported(name)
    ids = _prompt_ids(tiny, name)
    llm = _llama(path)
    llm.eval(ids)
    ours = np.array(llm.scores[: len(ids)])  # [T, vocab]
    with torch.no_grad():
        expected = ref.logits(torch.tensor([ids]))[0].numpy()
    diff = float(np.abs(ours - expected).max())
    rel = diff / float(np.abs(expected).max())
    tokens = []
    for _ in range(16):
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        tokens.append(token)
        llm.eval([token])
    want = ref.greedy(torch.tensor([ids]), None, 16)
    print(f"{name} ({part.info['arch']}): logits max abs {diff:.2e}, relative {rel:.2e}; greedy {tokens[:8]}...")
    assert rel <= 1e-3
    assert tokens == want


@pytest.mark.parametrize("name", TINY_NAMES)
def test_gguf_metadata(exported, tiny, name):
    ref, path, part = exported(name)
    byte_level = is_byte_level(json.loads((tiny(name) / "tokenizer.json").read_text()))
    reader = gguf.GGUFReader(str(path))
    fields = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("tokenizer.ggml.")
              or k.endswith("_id") or k.endswith("model") or k.endswith("pre")}
    arch = ref.text.arch
    print({k: v for k, v in fields.items() if k.startswith(("general.arch", "tokenizer", arch + ".block"))})
    assert fields["general.architecture"] == arch
    assert fields[f"{arch}.block_count"] == ref.text.num_layers
    assert fields[f"{arch}.attention.head_count_kv"] == ref.text.num_kv_heads
    assert fields["tokenizer.ggml.model"] == ("gpt2" if byte_level else "llama")  # GPT-2 BPE | SentencePiece-style
    names = {t.name for t in reader.tensors}
    types = ref.text.extra.get("layer_types") or ["full_attention"]
    attention = next(i for i, t in enumerate(types) if t != "linear_attention")  # a KV layer (hybrids: not 0)
    assert "token_embd.weight" in names and f"blk.{attention}.attn_q.weight" in names
    # A tied lm_head (Gemma always; Qwen 3.5 and Qwen2-VL 2B by their config): llama.cpp reuses token_embd, no output tensor.
    tied = text_arch(arch).output_tied or bool(ref.text.extra.get("tie_word_embeddings"))
    assert ("output.weight" in names) == (not tied)
    assert (part.runtime["token_scale"], part.runtime["embd_input_scale"]) == input_scales(arch, ref.text.hidden_size)


@pytest.mark.parametrize("name", ["minicpmv-2.5", "minicpmv-2.6", "paligemma", "gemma3"])
def test_llama_cpp_tokenizes_like_tokenizer_json(exported, tiny, name):
    from tokenizers import Tokenizer

    _, path, _ = exported(name)
    tok = Tokenizer.from_file(str(tiny(name) / "tokenizer.json"))
    llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    mismatches = []
    for text in TEXTS + [PROMPT]:
        want = tok.encode(text, add_special_tokens=False).ids
        got = llm.tokenize(text.encode(), add_bos=False, special=True)
        if got != want:
            mismatches.append((text, want[:10], got[:10]))
    print(f"{name}: {len(TEXTS) + 1 - len(mismatches)}/{len(TEXTS) + 1} texts tokenized identically")
    assert not mismatches


def test_f16_export_is_smaller_and_close(exported, tiny):
    ref, path32, _ = exported("minicpmv-2.6", "fp32")
    _, path16, part = exported("minicpmv-2.6", "fp16")
    ids = _prompt_ids(tiny, "minicpmv-2.6")
    runs = []
    for path in (path32, path16):
        llm = _llama(path)
        llm.eval(ids)
        runs.append(np.array(llm.scores[: len(ids)]))
    rel = float(np.abs(runs[0] - runs[1]).max() / np.abs(runs[0]).max())
    agree = float((runs[0].argmax(-1) == runs[1].argmax(-1)).mean())
    print(f"f16 vs f32: {path16.stat().st_size} vs {path32.stat().st_size} bytes, relative {rel:.2e}, top-1 {agree:.2f}")
    assert part.dtype == "fp16"
    assert path16.stat().st_size < 0.6 * path32.stat().st_size
    assert rel < 1e-2 and agree == 1.0


def test_unsupported_dtype_is_a_clear_error(exported, tiny, tmp_path):
    from edgevlm.errors import CheckpointError

    ref, _, _ = exported("gemma3")
    with pytest.raises(CheckpointError, match="choose one of fp32, fp16"):
        export_text_gguf(ref, tiny("gemma3"), tmp_path / "x.gguf", "q4")
