"""What every family's PyTorch reference model offers to the exporters and the parity checks.

A family's ``load_reference`` turns a checkpoint directory into a ``ReferenceVLM``: the same three
parts every bundle has (vision -> image features, token embedding, text decoder), the vision graph
the exporters write (``vision_graph()``), and a reference forward pass and greedy generation that
the parity checks compare with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...errors import CheckpointError


def read_config(ckpt: str | Path) -> dict[str, Any]:
    from .. import read_config as read

    return read(ckpt)


def load_safetensors_dir(ckpt: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of every *.safetensors file in the directory (sharded checkpoints included)."""
    from safetensors.torch import load_file

    files = sorted(Path(ckpt).glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{ckpt}: no *.safetensors weights. Save the model with safetensors "
                              "(model.save_pretrained(dir, safe_serialization=True)).")
    tensors: dict[str, torch.Tensor] = {}
    for file in files:
        try:
            tensors.update(load_file(str(file)))
        except Exception as exc:  # safetensors raises its own SafetensorError / OSError kinds
            raise CheckpointError(f"{file}: cannot read these weights ({type(exc).__name__}: {exc}); the file is "
                                  "damaged or truncated. Copy the checkpoint again.") from None
    return tensors


def load_weights(module: nn.Module, tensors: dict[str, torch.Tensor], where: str) -> None:
    """Strict load with one readable error instead of PyTorch's wall of names."""
    result = module.load_state_dict(tensors, strict=False)
    missing = [k for k in result.missing_keys if not _tied(module, k)]
    if missing or result.unexpected_keys:
        raise CheckpointError(
            f"{where}: weights do not fit the config: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {result.unexpected_keys[:5]}{'...' if len(result.unexpected_keys) > 5 else ''}. "
            "Is config.json from the same checkpoint as the safetensors files?")
    if hasattr(module, "tie_weights"):
        module.tie_weights()


def _tied(module: nn.Module, key: str) -> bool:
    """lm_head.weight may be absent from a checkpoint whose config ties it to the embeddings."""
    return key.endswith("lm_head.weight") and _ties_embeddings(module)


def _ties_embeddings(module: nn.Module) -> bool:
    config = getattr(module, "config", None)
    text = getattr(config, "text_config", None) or config
    return bool(getattr(text, "tie_word_embeddings", False) or getattr(config, "tie_word_embeddings", False))


@dataclass
class TextSpec:
    """The text decoder's shape: what a KV cache and the GGUF / ORT writers need."""

    arch: str  # llama | qwen2 | qwen3 | gemma | gemma2 | gemma3 (llama.cpp / onnxruntime-genai names)
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    max_position_embeddings: int
    extra: dict[str, Any] = field(default_factory=dict)  # sliding_window, softcaps, rope ...

    @classmethod
    def from_config(cls, arch: str, cfg: Any) -> "TextSpec":
        heads = cfg.num_attention_heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
        extra = {k: getattr(cfg, k) for k in ("sliding_window", "final_logit_softcapping", "attn_logit_softcapping",
                                               "rope_theta", "layer_types", "query_pre_attn_scalar",
                                               "rms_norm_eps", "tie_word_embeddings")
                 if getattr(cfg, k, None) is not None}
        return cls(arch=arch, hidden_size=cfg.hidden_size, num_layers=cfg.num_hidden_layers, num_heads=heads,
                   num_kv_heads=getattr(cfg, "num_key_value_heads", heads) or heads, head_dim=head_dim,
                   vocab_size=cfg.vocab_size, max_position_embeddings=cfg.max_position_embeddings, extra=extra)


class ReferenceVLM(nn.Module):
    """A family's PyTorch reference, split into the parts a bundle exports.

    Subclasses set ``family`` and ``language_model`` (a transformers *ForCausalLM that takes
    inputs_embeds), and implement ``image_features``, ``embed_tokens`` and ``vision_graph``.
    """

    family: str = ""
    language_model: nn.Module
    text: TextSpec
    image_token_id: int  # the placeholder token whose rows receive image features
    position_offset: int = 0  # added to every position id (PaliGemma numbers positions from 1)
    position_streams: int = 1  # position ids per token: 1 (RoPE) or 3 (M-RoPE: temporal, height, width)
    # M-RoPE whose text tokens always take the same id in every stream (Qwen2-VL's image grids; not a canvas
    # whose markers are placed freely): llama.cpp gives a token id one position, so only these run from GGUF
    text_streams_equal: bool = False

    def vision_graph(self) -> Any:
        """The vision tower + connector for the exporters (families/common/vision_graph.py)."""
        raise NotImplementedError

    def hf_processor(self, ckpt: str | Path) -> Any:
        """transformers' own processor of the checkpoint (the parity check's reference preprocessing);
        raises when transformers has none for it (remote-code processors)."""
        from transformers import AutoProcessor

        # the Pillow backend: the one our processing matches bit for bit (with torchvision installed,
        # transformers would pick its torchvision twins, whose resizes differ)
        return AutoProcessor.from_pretrained(str(ckpt), backend="pil")

    def image_features(self, **image_inputs: torch.Tensor) -> torch.Tensor:
        """Preprocessed image tensors -> features [n_chunks, tokens_per_chunk, hidden]."""
        raise NotImplementedError

    def embed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        """[B, T] ids -> [B, T, hidden], including any embedding scale the text model applies."""
        raise NotImplementedError

    def merge_embeddings(self, input_ids: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
        """Token embeddings with the image placeholder rows replaced by features, in order: [B, T, hidden]."""
        embeds = self.embed_tokens(input_ids)
        if features is None or features.numel() == 0:
            return embeds
        rows = features.reshape(-1, features.shape[-1]).to(embeds.dtype)  # [n_image_tokens, hidden]
        positions = input_ids == self.image_token_id
        if int(positions.sum()) != rows.shape[0]:
            raise ValueError(f"{int(positions.sum())} image placeholders but {rows.shape[0]} feature rows")
        embeds = embeds.clone()
        embeds[positions] = rows
        return embeds

    @torch.no_grad()
    def logits(self, input_ids: torch.Tensor, features: torch.Tensor | None = None,
               attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Full forward of the text model on merged embeddings: [B, T, vocab]."""
        embeds = self.merge_embeddings(input_ids, features)
        return self.language_model(inputs_embeds=embeds, attention_mask=attention_mask).logits

    @torch.no_grad()
    def greedy(self, input_ids: torch.Tensor, features: torch.Tensor | None, max_new_tokens: int,
               eos_ids: tuple[int, ...] = ()) -> list[int]:
        """Greedy tokens from the reference (causal prefill; subclasses override for other masks)."""
        embeds = self.merge_embeddings(input_ids, features)
        out = self.language_model(inputs_embeds=embeds, use_cache=True)
        past, tokens = out.past_key_values, []
        next_id = int(out.logits[0, -1].argmax())
        for _ in range(max_new_tokens):
            tokens.append(next_id)
            if next_id in eos_ids:
                break
            step = self.embed_tokens(torch.tensor([[next_id]]))
            out = self.language_model(inputs_embeds=step, past_key_values=past, use_cache=True)
            past, next_id = out.past_key_values, int(out.logits[0, -1].argmax())
        return tokens

