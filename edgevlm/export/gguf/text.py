"""The text decoder as a GGUF file of an architecture stock llama.cpp knows (edgevlm/text_archs.py).

Tensor names come from gguf-py's own maps (``gguf.get_tensor_name_map``), hyper-parameters from its
writer helpers; the per-architecture differences are the facts in text_archs.py, applied as the
weight transforms llama.cpp's converter also applies (techspec §4.2 / vendored ``conversion/*.py``):
q/k rows permuted from HF's rotate-half RoPE layout to GGML's interleaved one; RMSNorm weights
stored as (1 + w); a tied output head dropped (llama.cpp reuses token_embd).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import CheckpointError
from ...manifest import Part
from ...text_archs import TextArch, text_arch
from .tokenizer import add_tokenizer, vocab_tokens
from .writer import write_tensors

DTYPES = ("fp32", "fp16")
MROPE_SECTIONS = 4  # llama.cpp's M-RoPE: rope sections (and positions per embedding row: runtime/backends/llamacpp_batch.py)


def input_scales(arch: str, hidden: int) -> tuple[float, float]:
    """(scale llama.cpp applies to token-id inputs, scale it applies to embedding inputs)."""
    facts, root = text_arch(arch), float(np.sqrt(np.float32(hidden)))
    return (root if facts.token_input_scaled else 1.0), (root if facts.embd_input_scaled else 1.0)


def _gguf_arch(arch: TextArch):
    import gguf

    return getattr(gguf.MODEL_ARCH, arch.gguf_arch)


def _rope(cfg: Any) -> dict[str, Any]:
    """{layer_type or "default": rope params} from transformers 5 ``rope_parameters`` (or 4.x rope_theta)."""
    params = getattr(cfg, "rope_parameters", None)
    if isinstance(params, dict) and params and all(isinstance(v, dict) for v in params.values()):
        return params
    if isinstance(params, dict) and params:
        return {"default": params}
    return {"default": {"rope_type": "default", "rope_theta": getattr(cfg, "rope_theta", 10000.0)}}


def _check_rope(rope: dict[str, Any]) -> None:
    for kind, p in rope.items():
        if p.get("rope_type", "default") not in ("default", None):
            raise CheckpointError(f"RoPE scaling {p.get('rope_type')!r} ({kind}) is not supported by the GGUF "
                                  "export yet. Export to ONNX instead (--format onnx).")


def _permute_rotary(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF rotate-half q/k rows [n_head*hd, in] → GGML interleaved pairs (convert_hf_to_gguf LlamaModel.permute)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _write_hparams(writer, arch: TextArch, spec, cfg: Any) -> None:
    writer.add_context_length(int(spec.max_position_embeddings))
    writer.add_embedding_length(spec.hidden_size)
    writer.add_block_count(spec.num_layers)
    writer.add_feed_forward_length(int(cfg.intermediate_size))
    writer.add_head_count(spec.num_heads)
    writer.add_head_count_kv(spec.num_kv_heads)
    writer.add_key_length(spec.head_dim)
    writer.add_value_length(spec.head_dim)
    rope = _rope(cfg)
    _check_rope(rope)
    params = rope.get("full_attention", rope.get("default", {}))
    # rotary over the first partial_rotary_factor of each head (Qwen 3.5: a quarter)
    writer.add_rope_dimension_count(int(spec.head_dim * float(params.get("partial_rotary_factor", 1.0))))
    writer.add_layer_norm_rms_eps(float(getattr(cfg, "rms_norm_eps", 1e-6)))
    if arch.rope_sections:  # M-RoPE: llama.cpp takes 4 sections (t, h, w, extra), padded with 0 as its converter does
        sections = list(spec.extra.get("mrope_section") or params.get("mrope_section") or arch.rope_sections[:3])
        writer.add_rope_dimension_sections((sections + [0] * MROPE_SECTIONS)[:MROPE_SECTIONS])
    if arch.gated_delta:
        from .gated_delta import write_hparams

        write_hparams(writer, cfg, list(getattr(cfg, "layer_types", None) or spec.extra.get("layer_types") or []))
    writer.add_rope_freq_base(float(rope.get("full_attention", rope.get("default", {})).get("rope_theta", 10000.0)))
    if "sliding_attention" in rope:
        writer.add_rope_freq_base_swa(float(rope["sliding_attention"].get("rope_theta", 10000.0)))
    if arch.sliding_window_hparams:
        window = getattr(cfg, "sliding_window", None)
        types = getattr(cfg, "layer_types", None)
        if window:
            writer.add_sliding_window(int(window))
            if types:
                writer.add_sliding_window_pattern([t == "sliding_attention" for t in types])
        for key, add in (("attn_logit_softcapping", writer.add_attn_logit_softcapping),
                         ("final_logit_softcapping", writer.add_final_logit_softcapping)):
            value = getattr(cfg, key, None)
            if value and (arch.attn_softcap_in_gguf or key != "attn_logit_softcapping"):
                add(float(value))
        # llama.cpp hard-codes Gemma's attention scale as 1/sqrt(head_dim) (1/sqrt(d/heads) for 27B).
        scalar = getattr(cfg, "query_pre_attn_scalar", None)
        if scalar and int(scalar) not in (spec.head_dim, spec.hidden_size // spec.num_heads):
            raise CheckpointError(f"query_pre_attn_scalar {scalar} differs from head_dim {spec.head_dim}; "
                                  "llama.cpp cannot express this attention scale.")


def text_tensors(ref, arch: TextArch) -> dict[str, np.ndarray]:
    """HF state dict of the text model, transformed as llama.cpp expects, as GGUF name → float32 array."""
    import gguf

    spec = ref.text
    name_map = gguf.get_tensor_name_map(_gguf_arch(arch), spec.num_layers)
    tied = bool(spec.extra.get("tie_word_embeddings", arch.output_tied))
    out: dict[str, np.ndarray] = {}
    for hf_name, tensor in ref.language_model.state_dict().items():
        if hf_name == "lm_head.weight" and (tied or arch.output_tied):
            continue  # llama.cpp falls back to token_embd when output.weight is absent
        if "rotary_emb" in hf_name:
            continue
        data = tensor.detach().float().cpu().numpy()
        recurrent = arch.gated_delta and ".linear_attn." in hf_name
        if recurrent:  # A, dt, conv and value-head order as llama.cpp's converter writes them
            from .gated_delta import transform

            hf_name, data = transform(hf_name, data, ref.language_model.config)
        name = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise CheckpointError(f"text tensor {hf_name} has no GGUF name for arch {arch.name}; the checkpoint has "
                                  "a layer this exporter does not know.")
        if arch.norm_plus_one and hf_name.endswith("norm.weight") and not recurrent:  # (the gated norm: plain w)
            data = data + 1.0  # the model's RMSNorm computes x * (1 + w); llama.cpp computes x * w
        if arch.rotary_permuted and hf_name.endswith("q_proj.weight"):
            data = _permute_rotary(data, spec.num_heads)
        elif arch.rotary_permuted and hf_name.endswith("k_proj.weight"):
            data = _permute_rotary(data, spec.num_kv_heads)
        out[name] = np.ascontiguousarray(data)
    return out


def sampled_rows(tensors: dict[str, np.ndarray], n_tokens: int, placeholder_ids: set[int]) -> int:
    """How many vocabulary rows to write for llama.cpp: all but a trailing run that can never be right.

    An embedding table grown for a VLM (a text-only checkpoint + the image placeholder, padded to a multiple
    of 64: see the tiny Gemma 3 checkpoints) ends in zero rows. A zero row of the output head scores exactly 0 whatever
    the input, so stock llama.cpp samples it whenever every real logit is negative (Gemma 3 270M: the
    placeholder over and over). Our runtime never samples these ids (runtime/generate.py suppresses them) and
    feeds the placeholder as embedding rows, never as an id, so the GGUF leaves them out, as llama.cpp's
    own converter drops a Gemma 3 table's out-of-vocabulary rows. Only rows that are all zero AND belong to
    no text token (past the tokenizer's ``n_tokens``, or an image placeholder) go: a trained row, or a text
    token the prompt may contain, always stays.
    """
    head = tensors.get("output.weight", tensors["token_embd.weight"])  # [n_vocab, n_embd]
    keep = head.shape[0]
    while keep > 0 and (keep - 1 >= n_tokens or keep - 1 in placeholder_ids) and not head[keep - 1].any():
        keep -= 1
    return keep


def export_text_gguf(ref, ckpt: str | Path, path: str | Path, dtype: str = "fp32",
                     generation_config: dict[str, Any] | None = None) -> Part:
    """Write ``ref``'s text decoder + tokenizer + chat template to ``path``; return its manifest Part.

    ``dtype`` fp32 keeps every tensor float32; fp16 stores 2-D weights as float16 and keeps norms and
    biases float32 (as llama.cpp's converter does).
    """
    import gguf

    if dtype not in DTYPES:
        raise CheckpointError(f"--dtype {dtype} is not available for GGUF; choose one of {', '.join(DTYPES)}.")
    spec = ref.text
    arch = text_arch(spec.arch)
    cfg = ref.language_model.config
    tensors = text_tensors(ref, arch)
    writer = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[_gguf_arch(arch)])
    writer.add_name(Path(ckpt).name)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32 if dtype == "fp32" else gguf.LlamaFileType.MOSTLY_F16)
    _write_hparams(writer, arch, spec, cfg)
    n_vocab = sampled_rows(tensors, len(vocab_tokens(ckpt)), {int(ref.image_token_id)})
    for name in ("token_embd.weight", "output.weight"):
        if name in tensors:
            tensors[name] = tensors[name][:n_vocab]  # [n_vocab, n_embd]
    tokenizer = add_tokenizer(writer, ckpt, n_vocab, generation_config)
    # fp16: 2-D+ weights; the recurrent layers' conv kernel stays float32 (as llama.cpp's converter keeps it)
    write_tensors(writer, tensors, lambda name, data: dtype == "fp16" and data.ndim >= 2
                  and not name.endswith("ssm_conv1d.weight"))
    token_scale, embd_scale = input_scales(arch.name, spec.hidden_size)
    return Part(file=Path(path).name, format="gguf", dtype=dtype,
                # How the runtime turns ids / image features into embedding-input rows for llama.cpp
                # (see input_scales): row = token_embd[id] * token_scale / embd_input_scale; image = f / embd_input_scale.
                runtime={"token_scale": token_scale, "embd_input_scale": embd_scale},
                info={"arch": arch.name, "n_vocab": int(n_vocab), "tokenizer": tokenizer, "n_tensors": len(tensors),
                      "n_params": int(sum(math.prod(t.shape) for t in tensors.values()))})
