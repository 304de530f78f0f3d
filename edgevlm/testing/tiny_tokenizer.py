"""Small real tokenizers (tokenizer.json) for the tiny test checkpoints.

Two styles, matching the families' real tokenizers:
- ``sentencepiece``: Gemma / PaliGemma style: spaces normalised to "▁", BPE with byte fallback
  (``<0x00>``..``<0xFF>``), special tokens at fixed low ids.
- ``bytelevel``: Qwen2 / Llama-3 style: GPT-2 byte-level BPE, special tokens after the BPE vocabulary.

The BPE merges are trained on a fixed English corpus, so the result is deterministic.
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

CORPUS = """\
The quick brown fox jumps over the lazy dog. A picture shows a cat sitting on a red chair.
What is in the image? Describe the image in detail. There is a person holding an umbrella in the rain.
The receipt lists coffee, bread and milk; the total is twelve dollars and forty cents.
Two dogs are playing with a ball in the park while children watch from a bench.
answer en what colour is the car? caption en detect cat segment dog ocr
The sky is blue and the grass is green. Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 2024.
You are a helpful assistant. Please answer the question about the picture briefly.
Une image montre un chat. Das Bild zeigt einen Hund. 写真には猫がいます。
"""


def _train(style: str, vocab_size: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Train BPE on CORPUS; return (vocab, merges) of the trained model only (no special tokens)."""
    tok = Tokenizer(models.BPE())
    if style == "sentencepiece":
        tok.normalizer = normalizers.Replace(" ", "▁")
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
        alphabet: list[str] = []
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=alphabet, show_progress=False,
                                  special_tokens=[])
    tok.train_from_iterator(CORPUS.splitlines(), trainer=trainer)
    data = tok.to_str()
    import json

    model = json.loads(data)["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return model["vocab"], merges


def build_tokenizer(style: str, specials: list[str], bpe_vocab_size: int = 600,
                    extra_merges: tuple[tuple[str, str], ...] = ()) -> Tokenizer:
    """A tokenizer whose special tokens are ``specials`` (in this order).

    ``extra_merges``: BPE merges the corpus does not teach but a consumer relies on, their tokens given the
    ids after the specials (so no other id moves). E.g. ("Ċ", "Ċ"): real byte-level vocabularies have "\\n\\n"
    as one token, and llama.cpp's mtmd looks it up for SmolVLM's prompt (it aborts when there is none)."""
    trained_vocab, merges = _train(style, bpe_vocab_size)
    vocab: dict[str, int] = {}

    def add(token: str) -> None:
        if token not in vocab:
            vocab[token] = len(vocab)

    if style == "sentencepiece":
        # Gemma layout: specials first (pad=0, eos=1, bos=2, unk=3 ...), then byte-fallback tokens.
        for token in specials:
            add(token)
        for byte in range(256):
            add(f"<0x{byte:02X}>")
        for token, _ in sorted(trained_vocab.items(), key=lambda kv: kv[1]):
            add(token)
        model = models.BPE(vocab=vocab, merges=merges, byte_fallback=True, fuse_unk=True, unk_token="<unk>")
        tok = Tokenizer(model)
        tok.normalizer = normalizers.Replace(" ", "▁")
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    else:
        # Qwen2 / Llama-3 layout: the byte-level BPE vocabulary, then the special tokens.
        for token, _ in sorted(trained_vocab.items(), key=lambda kv: kv[1]):
            add(token)
        for token in specials:
            add(token)
        for left, right in extra_merges:
            add(left + right)
        tok = Tokenizer(models.BPE(vocab=vocab, merges=merges + list(extra_merges)))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(specials)
    return tok
