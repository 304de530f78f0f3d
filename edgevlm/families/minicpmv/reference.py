"""MiniCPM-V 2.5 / 2.6 / 4.0 / 4.5: navit SigLIP (``vpm.*``) → perceiver resampler (``resampler.*``) → LLM (``llm.*``).

The upstream model is remote code, not part of transformers, so this file is the reference: it
reuses transformers' ``Idefics2VisionTransformer`` (the navit SigLIP) and the text model classes,
and adds only the resampler (resampler.py) and the glue. Details: techspec §1.

Choice: every version uses 2-D navit position buckets from ``tgt_sizes`` and masks padded patches.
(2.5's remote code passed no tgt_sizes, giving 1-D buckets and unmasked padding — a bug that makes
features depend on batch padding; llama.cpp also uses 2-D buckets. See DESIGN.md.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...processing.config import ChatTemplate, ImageLayout, ProcessorConfig
from ..common.reference import BundleSpec, ReferenceVLM, TextSpec, load_safetensors_dir, load_weights, read_config
from .resampler import Resampler, chunk_position_embedding

NAME = "minicpmv"

# version -> (text model_type in transformers, llama.cpp clip.minicpmv_version)
VERSIONS: dict[float, tuple[str, int]] = {2.5: ("llama", 2), 2.6: ("qwen2", 3), 4.0: ("llama", 5), 4.5: ("qwen3", 6)}

# Config keys that belong to the multimodal wrapper, not to the text model.
_WRAPPER_KEYS = {"vision_config", "slice_config", "query_num", "image_size", "patch_size", "drop_vision_last_layer",
                 "batch_vision_input", "use_image_id", "slice_mode", "vision_batch_size", "version", "auto_map",
                 "architectures", "model_type", "_name_or_path", "transformers_version", "dtype", "torch_dtype"}


def matches(config: dict[str, Any]) -> bool:
    return config.get("model_type") == "minicpmv" or "MiniCPMV" in (config.get("architectures") or [])


def version_of(config: dict[str, Any]) -> float:
    version = float(config.get("version", 2.5))
    if version not in VERSIONS:
        from ...errors import CheckpointError

        raise CheckpointError(f"MiniCPM-V version {version} is not supported; edgevlm supports "
                              f"{sorted(VERSIONS)} (4.6 uses a different architecture).")
    return version


def text_config(config: dict[str, Any]):
    from transformers import AutoConfig

    model_type = VERSIONS[version_of(config)][0]
    fields = {k: v for k, v in config.items() if k not in _WRAPPER_KEYS}
    return AutoConfig.for_model(model_type, **fields)


def vision_config(config: dict[str, Any]):
    from transformers.models.idefics2.configuration_idefics2 import Idefics2VisionConfig

    fields = {k: v for k, v in config["vision_config"].items() if k not in ("model_type", "architectures")}
    return Idefics2VisionConfig(**fields)


def navit_position_ids(tgt_sizes: torch.Tensor, max_patches: int, per_side: int) -> torch.Tensor:
    """Learned-position-table rows per patch, [B, max_patches]: bucket(i/h)*per_side + bucket(j/w).

    The navit SigLIP buckets i/h against the boundaries k/per_side (right-closed), i.e. the exact
    bucket is floor(per_side*i/h), which is what llama.cpp computes. Upstream code computes it in
    float32 (torch.arange + bucketize); at exact ties (i/h == k/per_side, e.g. h=25, i=5) torch's
    vectorised arange rounds i/h just below the boundary for some sizes, so upstream's ids differ
    from the exact ones there, and the result depends on torch's kernel. We use the exact integer
    form in the reference, the runtime and the Android core (tests/test_families.py records where
    upstream's float form differs).
    """
    out = torch.zeros(len(tgt_sizes), max_patches, dtype=torch.long)
    for b, (h, w) in enumerate(tgt_sizes.tolist()):
        rows = per_side * torch.arange(h) // h  # [h]
        cols = per_side * torch.arange(w) // w  # [w]
        out[b, : h * w] = (rows[:, None] * per_side + cols[None, :]).reshape(-1)
    return out


class MiniCPMV(ReferenceVLM):
    family = NAME
    attention = "causal"

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        from transformers import AutoModelForCausalLM
        from transformers.models.idefics2.modeling_idefics2 import Idefics2VisionTransformer

        self.config = config
        self.version = version_of(config)
        self.query_num = int(config.get("query_num", 64))
        tcfg = text_config(config)
        vcfg = vision_config(config)
        tcfg._attn_implementation = vcfg._attn_implementation = "eager"
        self.vpm = Idefics2VisionTransformer(vcfg)
        if config.get("drop_vision_last_layer", False):
            self.vpm.encoder.layers = self.vpm.encoder.layers[:-1]
        self.resampler = Resampler(self.query_num, tcfg.hidden_size, vcfg.hidden_size)
        self.llm = AutoModelForCausalLM.from_config(tcfg)
        self.text = TextSpec.from_config(VERSIONS[self.version][0], tcfg)
        self.patches_per_side = vcfg.image_size // vcfg.patch_size

    @property
    def language_model(self) -> nn.Module:
        return self.llm

    def vision_tokens(self, pixel_values: torch.Tensor, patch_mask: torch.Tensor, tgt_sizes: torch.Tensor) -> torch.Tensor:
        """pixel_values [B, 3, p, L] (chunks patchified, zero-padded), patch_mask [B, N] -> [B, N, Dv]."""
        emb = self.vpm.embeddings.patch_embedding(pixel_values)  # [B, Dv, 1, N]
        emb = emb.flatten(2).transpose(1, 2)  # [B, N, Dv]
        positions = navit_position_ids(tgt_sizes, emb.shape[1], self.patches_per_side)
        emb = emb + self.vpm.embeddings.position_embedding(positions)
        # Bidirectional attention within each chunk; padded patches are never attended to.
        additive = torch.zeros(patch_mask.shape, dtype=emb.dtype).masked_fill(~patch_mask, torch.finfo(emb.dtype).min)
        hidden = self.vpm.encoder(inputs_embeds=emb, attention_mask=additive[:, None, None, :]).last_hidden_state
        return self.vpm.post_layernorm(hidden)

    def image_features(self, pixel_values: torch.Tensor, patch_mask: torch.Tensor,
                       tgt_sizes: torch.Tensor) -> torch.Tensor:
        """[B, 3, p, L], [B, N] bool, [B, 2] (h, w patches) -> [B, query_num, hidden]."""
        tokens = self.vision_tokens(pixel_values, patch_mask, tgt_sizes)
        key_pos = chunk_position_embedding(tgt_sizes, self.resampler.embed_dim, tokens.shape[1]).to(tokens.dtype)
        return self.resampler(tokens, key_pos, ~patch_mask)

    def embed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.llm.get_input_embeddings()(input_ids)


def load_reference(ckpt: str | Path, dtype: torch.dtype = torch.float32) -> MiniCPMV:
    config = read_config(ckpt)
    model = MiniCPMV(config)
    tensors = load_safetensors_dir(ckpt)
    load_weights(model, tensors, str(ckpt))
    model.image_token_id = _unk_id(Path(ckpt))
    return model.to(dtype).eval()


def _unk_id(ckpt: Path) -> int:
    """MiniCPM-V writes image placeholders as ``<unk>``."""
    from tokenizers import Tokenizer

    token_id = Tokenizer.from_file(str(ckpt / "tokenizer.json")).token_to_id("<unk>")
    if token_id is None:
        from ...errors import CheckpointError

        raise CheckpointError(f"{ckpt}/tokenizer.json has no <unk> token, which MiniCPM-V uses as image placeholder.")
    return token_id


LLAMA3_CHAT = ChatTemplate(
    system_template="<|start_header_id|>system<|end_header_id|>\n\n{content}<|eot_id|>",
    user_template="<|start_header_id|>user<|end_header_id|>\n\n{content}<|eot_id|>",
    assistant_template="<|start_header_id|>assistant<|end_header_id|>\n\n{content}<|eot_id|>",
    generation_prompt="<|start_header_id|>assistant<|end_header_id|>\n\n", bos="<|begin_of_text|>",
    strip_content="message", stop_strings=("<|eot_id|>",))
CHATML_CHAT = ChatTemplate(default_system="You are a helpful assistant.", stop_strings=("<|im_end|>", "<|endoftext|>"))


def bundle_spec(config: dict[str, Any]) -> BundleSpec:
    """2.5: Llama-3 chat, <image>/<slice> nesting, 96 queries; 2.6+: ChatML, image ids, <slice> per slice."""
    version = version_of(config)
    # slice settings live in slice_config (2.6+); older configs keep them at the top level
    slicing = {**{k: config[k] for k in ("max_slice_nums", "scale_resolution", "patch_size") if k in config},
               **config.get("slice_config", {})}
    processor = ProcessorConfig(kind="slice", image_size=slicing.get("scale_resolution", 448),
                                patch_size=slicing.get("patch_size", 14),
                                max_slice_nums=slicing.get("max_slice_nums", 9),
                                scale_resolution=slicing.get("scale_resolution", 448))
    tokens = int(config.get("query_num", 96 if version == 2.5 else 64))
    if version == 2.5:
        layout = ImageLayout(feature_token="<unk>", tokens_per_chunk=tokens, slice_template="<image>{features}</image>",
                             slices_open="<slice>", slices_close="</slice>", image_suffix="\n")
        return BundleSpec(processor, layout, LLAMA3_CHAT, ["<|eot_id|>", "<|end_of_text|>"], CHAT_SAMPLING)
    image_id = "<image_id>{index}</image_id>" if config.get("use_image_id", True) else ""
    layout = ImageLayout(feature_token="<unk>", tokens_per_chunk=tokens, image_id_template=image_id)
    return BundleSpec(processor, layout, CHATML_CHAT, ["<|im_end|>", "<|endoftext|>"], CHAT_SAMPLING)


# The upstream chat() sampling defaults (techspec §1.5).
CHAT_SAMPLING = {"temperature": 0.7, "top_p": 0.8, "top_k": 100, "repetition_penalty": 1.05}


def random_config(version: float, vocab_size: int, special_ids: dict[str, int]) -> dict[str, Any]:
    """A tiny config in the remote-code layout (text fields at top level, as the real checkpoints)."""
    model_type, _ = VERSIONS[version]
    text = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, vocab_size=vocab_size, max_position_embeddings=2048, rms_norm_eps=1e-6,
                rope_theta=10000.0, tie_word_embeddings=False, hidden_act="silu", **special_ids)
    if model_type == "qwen3":
        text["head_dim"] = 32
    return {
        "architectures": ["MiniCPMV"], "model_type": "minicpmv", "version": version,
        "query_num": 96 if version == 2.5 else 64, "image_size": 448, "patch_size": 14,
        "drop_vision_last_layer": False, "batch_vision_input": True, "use_image_id": version >= 2.6,
        "slice_mode": True, "vision_batch_size": 16,
        "slice_config": {"model_type": "minicpmv", "patch_size": 14, "max_slice_nums": 9, "scale_resolution": 448},
        "vision_config": {"model_type": "siglip", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                          "num_attention_heads": 4, "image_size": 980, "patch_size": 14, "layer_norm_eps": 1e-6,
                          "hidden_act": "gelu_pytorch_tanh"},
        **text,
    }
