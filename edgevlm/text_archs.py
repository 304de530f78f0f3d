"""Text-model architectures: the facts the GGUF writer and the runtimes need about each one.

An architecture is named as llama.cpp and onnxruntime-genai name it. Families say which one their
text model is (``TextSpec.arch``); nothing else in the exporters depends on the name. Facts come from
llama.cpp's own code (vendored convert_hf_to_gguf.py conversion/*.py and src/models/*.cpp of
llama-cpp-python 0.3.36) and are checked by tests/test_gguf_text.py against llama.cpp itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import CheckpointError


@dataclass(frozen=True)
class TextArch:
    name: str
    gguf_arch: str  # gguf.MODEL_ARCH member
    token_input_scaled: bool = False  # llama.cpp multiplies token-id inputs by sqrt(n_embd)
    embd_input_scaled: bool = False  # ... and embedding inputs (image features) too
    norm_plus_one: bool = False  # RMSNorm computes x * (1 + w): llama.cpp wants (1 + w) stored
    output_tied: bool = False  # llama.cpp always reuses token_embd as the output head (lm_head dropped)
    rotary_permuted: bool = False  # q/k rows from HF rotate-half layout to GGML's interleaved pairs
    sliding_window_hparams: bool = False  # writes sliding window + pattern, softcaps, checks the attention scale
    attn_softcap_in_gguf: bool = True  # with sliding_window_hparams: whether llama.cpp reads attn_logit_softcapping
    gated_delta: bool = False  # linear-attention (Gated DeltaNet) layers: ssm keys + tensor transforms (export/gguf/gated_delta.py)
    rope_sections: tuple[int, ...] = ()  # M-RoPE arch: default rope.dimension_sections (llama.cpp requires the key)


# Scales read from vendored src/models/*.cpp: gemma.cpp / gemma2.cpp scale every input (tokens AND
# embeddings) by sqrt(n_embd); gemma3.cpp only token ids (``ubatch.token ? sqrtf(n_embd) : 1``).
ARCHS = {a.name: a for a in (
    TextArch("llama", "LLAMA", rotary_permuted=True),
    TextArch("qwen2", "QWEN2"),
    TextArch("qwen3", "QWEN3"),
    # Qwen2 layers rotated with M-RoPE (Qwen2-VL / Qwen2.5-VL): llama.cpp takes 4 positions per token
    # (conversion/qwenvl.py writes the rope sections padded to 4; runtime/backends/llamacpp_batch.py)
    TextArch("qwen2vl", "QWEN2VL", rope_sections=(16, 24, 24, 0)),  # transformers' default mrope_section
    TextArch("gemma", "GEMMA", token_input_scaled=True, embd_input_scaled=True, norm_plus_one=True,
             output_tied=True),
    TextArch("gemma2", "GEMMA2", token_input_scaled=True, embd_input_scaled=True, norm_plus_one=True,
             output_tied=True, sliding_window_hparams=True),
    TextArch("gemma3", "GEMMA3", token_input_scaled=True, norm_plus_one=True, output_tied=True,
             sliding_window_hparams=True, attn_softcap_in_gguf=False),
    # Qwen3.5 (MiniCPM-V 4.6's text): hybrid Gated DeltaNet + gated attention, zero-centred norms (x * (1 + w),
    # except the gated norm of the linear layers), interleaved M-RoPE over a partial rotary dim
    # (vendored conversion/qwen.py Qwen3_5TextModel, src/models/qwen35.cpp).
    TextArch("qwen35", "QWEN35", norm_plus_one=True, gated_delta=True, rope_sections=(11, 11, 10, 0)),
)}

# transformers text model_type -> architecture name, where they differ
FROM_MODEL_TYPE = {"gemma3_text": "gemma3", "qwen3_5_text": "qwen35"}

# Distinctive fragments of the split regexes in tokenizer.json -> llama.cpp ``tokenizer.ggml.pre`` names
# (llama-vocab.cpp accepts these names; the fragments are what tells the published regexes apart).
PRE_TOKENIZERS = (
    ("[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+", "qwen35"),  # Qwen 3.5 (letters with marks)
    ("\\p{N}{1,3}", "llama-bpe"),  # Llama 3
    ("[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|", "qwen2"),  # Qwen 2 / 2.5 / 3
)


def arch_of_model_type(model_type: str) -> str:
    return FROM_MODEL_TYPE.get(model_type, model_type)


def text_arch(name: str) -> TextArch:
    if name not in ARCHS:
        raise CheckpointError(f"text architecture {name!r} has no GGUF export; supported: {', '.join(ARCHS)}.")
    return ARCHS[name]
