"""Tokenizer wrapper and streaming decoder, on the tiny tokenizers (SentencePiece-style byte fallback and
GPT-2 byte-level BPE) that the tiny checkpoints use, cross-checked against transformers' fast tokenizer."""

from __future__ import annotations

import numpy as np
import pytest
from tokenizers import decoders, normalizers, processors

from edgevlm.processing.tokenizer import StreamDecoder, Tokenizer

tiny_tokenizer = pytest.importorskip("edgevlm.testing.tiny_tokenizer")

SPECIALS_SP = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "<image>"]
SPECIALS_BL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>", "<image>", "</image>"]

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "  leading and  double  spaces ",
    "Emoji 🐱🐶 and accents: café, naïve, Zürich — “quotes”",
    "写真には猫がいます。日本語のテキスト",
    "mixed\nnew lines\n\nand tabs\tok",
    "<start_of_turn>user\nhi<end_of_turn>",
    "🙂",
]


@pytest.fixture(scope="module", params=["sentencepiece", "bytelevel"])
def tokenizer(request, tmp_path_factory):
    specials = SPECIALS_SP if request.param == "sentencepiece" else SPECIALS_BL
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tiny_tokenizer.build_tokenizer(request.param, specials).save(str(path))
    return Tokenizer.from_file(path), path


def test_encode_matches_transformers_and_parses_special_tokens(tokenizer):
    from transformers import PreTrainedTokenizerFast

    ours, path = tokenizer
    hf = PreTrainedTokenizerFast(tokenizer_file=str(path))
    for text in TEXTS + ["<image>what<image>"]:
        ids = ours.encode(text)
        assert ids.dtype == np.int64
        assert ids.tolist() == hf.encode(text, add_special_tokens=False)
    image_id = ours.token_to_id("<image>")
    assert ours.encode("a<image>b").tolist().count(image_id) == 1


def test_no_bos_unless_asked(tmp_path):
    raw = tiny_tokenizer.build_tokenizer("sentencepiece", SPECIALS_SP)
    raw.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
    path = tmp_path / "tokenizer.json"
    raw.save(str(path))
    assert Tokenizer.from_file(path).encode("hi")[0] != 2
    assert Tokenizer.from_file(path, add_special_tokens=True).encode("hi")[0] == 2


@pytest.mark.parametrize("text", TEXTS)
def test_stream_deltas_add_up_to_the_full_decode(tokenizer, text):
    ours, _ = tokenizer
    ids = ours.encode(text)
    decoder = StreamDecoder(ours, skip_special_tokens=False)
    deltas = [decoder.push(i) for i in ids]
    deltas.append(decoder.flush())
    assert "".join(deltas) == ours.decode(ids, skip_special_tokens=False)
    assert not any("\ufffd" in d for d in deltas)


def test_multibyte_characters_are_held_back_until_complete(tokenizer):
    ours, _ = tokenizer
    ids = ours.encode("🐱")
    assert len(ids) > 1  # split over several byte tokens: the case that breaks naive streaming
    decoder = StreamDecoder(ours)
    deltas = [decoder.push(i) for i in ids]
    assert deltas[:-1] == [""] * (len(ids) - 1) and deltas[-1] == "🐱"


def test_leading_spaces_survive_streaming():
    # Llama-2 style SentencePiece: a "▁" is prepended to the text and the decoder strips one
    # leading space, so every token decoded on its own loses its space.
    raw = tiny_tokenizer.build_tokenizer("sentencepiece", SPECIALS_SP)
    raw.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    raw.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    ours = Tokenizer(raw)
    ids = ours.encode("a picture of a cat")
    assert ours.decode(ids) == "a picture of a cat"
    assert "".join(ours.decode([i]) for i in ids) != "a picture of a cat"  # what naive streaming gives
    decoder = StreamDecoder(ours)
    assert "".join(decoder.push(i) for i in ids) + decoder.flush() == "a picture of a cat"


def test_truncated_utf8_at_the_end_is_flushed():
    ours = Tokenizer(tiny_tokenizer.build_tokenizer("sentencepiece", SPECIALS_SP))
    ids = ours.encode("ok 🐱")[:-1]  # drop the last byte token: incomplete character
    decoder = StreamDecoder(ours)
    pushed = "".join(decoder.push(i) for i in ids)
    assert "\ufffd" not in pushed
    assert pushed + decoder.flush() == ours.decode(ids)
