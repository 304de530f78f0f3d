"""tokenizer.json + tokenizer_config.json → ``tokenizer.ggml.*`` GGUF metadata that llama.cpp tokenizes with.

Two tokenizer styles occur in our families (see testing/tiny_tokenizer.py and the real models):
- SentencePiece-style BPE with "▁" and byte fallback (the Gemma-based text models): written as llama.cpp's
  ``llama`` (SPM) model. SPM merges the adjacent pair whose result has the highest score, so a BPE
  vocabulary becomes SPM by scoring each token ``-(rank of the merge that creates it)``; a Unigram
  vocabulary keeps its own log-probabilities.
- GPT-2 byte-level BPE (Llama 3, Qwen 2/3, MiniCPM-V): written as ``gpt2`` with the merges and a
  pre-tokenizer name llama.cpp knows, chosen by the split regex in tokenizer.json.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from ...errors import CheckpointError
from ...text_archs import PRE_TOKENIZERS

log = logging.getLogger(__name__)

# llama.cpp token types (llama_token_type / gguf.TokenType).
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6



def read_tokenizer_files(ckpt: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    ckpt = Path(ckpt)
    path = ckpt / "tokenizer.json"
    if not path.is_file():
        raise CheckpointError(f"{ckpt}: no tokenizer.json, which the GGUF export needs for the vocabulary. "
                              "Save the tokenizer with tokenizer.save_pretrained(dir).")
    tok = json.loads(path.read_text(encoding="utf-8"))
    cfg_path = ckpt / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8")) if cfg_path.is_file() else {}
    return tok, cfg


def chat_template(ckpt: str | Path, tokenizer_config: dict[str, Any]) -> str | None:
    """The Jinja chat template, from tokenizer_config.json or chat_template.jinja (transformers 5)."""
    template = tokenizer_config.get("chat_template")
    if isinstance(template, list):  # named templates: keep the default one
        template = next((t["template"] for t in template if t.get("name") == "default"), None)
    jinja = Path(ckpt) / "chat_template.jinja"
    if template is None and jinja.is_file():
        template = jinja.read_text(encoding="utf-8")
    return template


def _walk(node: Any):
    """Every dict inside a tokenizer.json component (Sequence members included)."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def is_byte_level(tok: dict[str, Any]) -> bool:
    return any(n.get("type") == "ByteLevel" for n in _walk(tok.get("pre_tokenizer")))


def pre_tokenizer_name(tok: dict[str, Any]) -> str:
    """llama.cpp pre-tokenizer for a byte-level BPE tokenizer.json."""
    patterns = [n["pattern"].get("Regex", "") for n in _walk(tok.get("pre_tokenizer"))
                if n.get("type") == "Split" and isinstance(n.get("pattern"), dict)]
    for pattern in patterns:
        for fragment, name in PRE_TOKENIZERS:
            if fragment in pattern:
                return name
    byte_level = [n for n in _walk(tok.get("pre_tokenizer")) if n.get("type") == "ByteLevel"]
    if not patterns and byte_level and byte_level[0].get("use_regex", True):
        return "gpt-2"  # ByteLevel's built-in regex is GPT-2's
    log.warning("unrecognised pre-tokenizer regex %s; llama.cpp will use its default split", patterns)
    return "default"


def _vocab_list(tok: dict[str, Any]) -> list[str]:
    """Token strings by id (model vocab plus added tokens; gaps filled with placeholders)."""
    model = tok["model"]
    if model["type"] == "Unigram":
        by_id = {i: piece for i, (piece, _) in enumerate(model["vocab"])}
    else:
        by_id = {i: t for t, i in model["vocab"].items()}
    for added in tok.get("added_tokens", []):
        by_id[added["id"]] = added["content"]
    size = max(by_id) + 1
    return [by_id.get(i, f"[PAD{i}]") for i in range(size)]


def vocab_tokens(ckpt: str | Path) -> list[str]:
    """The checkpoint's tokens by id, as the GGUF vocabulary lists them (before padding to the table)."""
    return _vocab_list(read_tokenizer_files(ckpt)[0])


def _spm_scores(tok: dict[str, Any], tokens: list[str]) -> list[float]:
    model = tok["model"]
    if model["type"] == "Unigram":
        scores = [float(s) for _, s in model["vocab"]]
        return scores + [0.0] * (len(tokens) - len(scores))
    # BPE: a token made by merge r gets score -r, so SPM's "highest score first" replays BPE's rank order.
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model.get("merges", [])]
    rank = {}
    for r, (a, b) in enumerate(merges):
        rank.setdefault(a + b, r)
    return [-float(rank[t]) if t in rank else 0.0 for t in tokens]


def _token_types(tok: dict[str, Any], tokens: list[str], spm: bool) -> list[int]:
    types = [NORMAL] * len(tokens)
    if spm:
        for i, t in enumerate(tokens):
            if re.fullmatch(r"<0x[0-9A-F]{2}>", t):
                types[i] = BYTE
    for added in tok.get("added_tokens", []):
        if added["id"] < len(tokens):
            types[added["id"]] = CONTROL if added.get("special") else USER_DEFINED
    unk = tok["model"].get("unk_token")
    if unk is not None and unk in tokens:
        types[tokens.index(unk)] = UNKNOWN
    for i, t in enumerate(tokens):
        if t.startswith("[PAD") and t.endswith("]"):
            types[i] = UNUSED
    return types


def _token_id(tokens: list[str], value: Any) -> int | None:
    if isinstance(value, dict):  # {"content": "<bos>", ...}
        value = value.get("content")
    if isinstance(value, str) and value in tokens:
        return tokens.index(value)
    return None


def add_tokenizer(writer, ckpt: str | Path, vocab_size: int, generation_config: dict[str, Any] | None = None) -> dict:
    """Write tokenizer.ggml.* and tokenizer.chat_template; returns a summary for the manifest/report.

    ``vocab_size`` is the model's embedding rows: the token list is padded (UNUSED) or must fit it,
    because llama.cpp requires n_vocab == token_embd rows.
    """
    tok, cfg = read_tokenizer_files(ckpt)
    tokens = _vocab_list(tok)
    dropped: list[str] = []
    if len(tokens) > vocab_size:
        added = {a["id"] for a in tok.get("added_tokens", [])}
        if not all(i in added for i in range(vocab_size, len(tokens))):
            raise CheckpointError(f"{ckpt}: tokenizer.json has {len(tokens)} tokens but the model embeds only "
                                  f"{vocab_size}. Is tokenizer.json from this checkpoint?")
        # Added tokens past the embedding table (e.g. Gemma 3's <image_soft_token> on a text-only
        # Gemma 3) are placeholders whose rows the runtime replaces with image features; llama.cpp
        # needs n_vocab == embedding rows, so they are left out of the GGUF vocabulary.
        dropped = tokens[vocab_size:]
        log.warning("leaving %d added tokens past the embedding table out of the GGUF vocab: %s", len(dropped),
                    dropped[:5])
        tokens = tokens[:vocab_size]
    tokens += [f"[PAD{i}]" for i in range(len(tokens), vocab_size)]
    spm = not is_byte_level(tok)
    types = _token_types(tok, tokens, spm)
    if spm:
        writer.add_tokenizer_model("llama")
        writer.add_tokenizer_pre("default")
        writer.add_token_list(tokens)
        writer.add_token_scores(_spm_scores(tok, tokens))
        writer.add_token_types(types)
        # The tokenizer.json decides about "▁" prefixing through its normalizer; ours never prepend.
        prepend = any(n.get("type") == "Prepend" or n.get("prepend_scheme") in ("always", "first")
                      for n in _walk(tok.get("normalizer")) if isinstance(n, dict)) or any(
            n.get("prepend_scheme") in ("always", "first") for n in _walk(tok.get("pre_tokenizer")))
        writer.add_add_space_prefix(bool(prepend))
        pre = "default"
    else:
        pre = pre_tokenizer_name(tok)
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(pre)
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"].get("merges", [])]
        writer.add_token_merges(merges)

    gen = generation_config or {}
    ids = {name: _token_id(tokens, cfg.get(f"{name}_token")) for name in ("bos", "eos", "unk", "pad")}
    for name, key in (("bos", "bos_token_id"), ("eos", "eos_token_id"), ("pad", "pad_token_id")):
        value = gen.get(key)
        if ids[name] is None and value is not None:
            ids[name] = value[0] if isinstance(value, list) else value
    if ids["bos"] is not None:
        writer.add_bos_token_id(ids["bos"])
    if ids["eos"] is not None:
        writer.add_eos_token_id(ids["eos"])
    if ids["unk"] is not None:
        writer.add_unk_token_id(ids["unk"])
    if ids["pad"] is not None:
        writer.add_pad_token_id(ids["pad"])
    # Gemma-style SentencePiece tokenizers prepend <bos> unless the config says otherwise.
    writer.add_add_bos_token(bool(cfg.get("add_bos_token", spm)))
    writer.add_add_eos_token(bool(cfg.get("add_eos_token", False)))
    template = chat_template(ckpt, cfg)
    if template:
        writer.add_chat_template(template)
    return {"model": "llama" if spm else "gpt2", "pre": pre, "n_tokens": len(tokens), **ids,
            "chat_template": bool(template), "dropped_tokens": dropped}
