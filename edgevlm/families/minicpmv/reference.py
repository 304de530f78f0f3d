"""The MiniCPM-V 2.5 / 2.6 / 4.0 / 4.5 reference: navit SigLIP (``vpm.*``) -> resampler (``resampler.*``) -> LLM (``llm.*``).

The upstream model is remote code, not part of transformers, so this file is the reference: it
reuses transformers' ``Idefics2VisionTransformer`` (the navit SigLIP) and the text model classes,
and adds only the resampler (resampler.py), the vision forward (vision.py) and the glue. Details:
techspec §1.

Choice: every version uses 2-D navit position buckets from ``tgt_sizes`` and masks padded patches.
(2.5's remote code passed no tgt_sizes, giving 1-D buckets and unmasked padding, a bug that makes
features depend on batch padding; llama.cpp also uses 2-D buckets. See DESIGN.md.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ...errors import CheckpointError
from ..common.reference import ReferenceVLM, TextSpec, load_safetensors_dir, load_weights, read_config
from .resampler import Resampler
from .spec import NAME, VERSIONS, scale_resolution, version_of
from .vision import MASK_VALUES, chunk_tables, navit_features, vision_graph

# Config keys that belong to the multimodal wrapper, not to the text model.
_WRAPPER_KEYS = {"vision_config", "slice_config", "query_num", "image_size", "patch_size", "drop_vision_last_layer",
                 "batch_vision_input", "use_image_id", "slice_mode", "vision_batch_size", "version", "auto_map",
                 "architectures", "model_type", "_name_or_path", "transformers_version", "dtype", "torch_dtype"}


def text_config(config: dict[str, Any]):
    from transformers import AutoConfig

    model_type = VERSIONS[version_of(config)][0]
    fields = {k: v for k, v in config.items() if k not in _WRAPPER_KEYS}
    return AutoConfig.for_model(model_type, **fields)


def vision_config(config: dict[str, Any]):
    from transformers.models.idefics2.configuration_idefics2 import Idefics2VisionConfig

    fields = {k: v for k, v in config["vision_config"].items() if k not in ("model_type", "architectures")}
    return Idefics2VisionConfig(**fields)


class MiniCPMV(ReferenceVLM):
    family = NAME

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

    def image_features(self, pixel_values: torch.Tensor, patch_mask: torch.Tensor,
                       tgt_sizes: torch.Tensor) -> torch.Tensor:
        """[B, 3, p, L], [B, N] bool, [B, 2] (h, w patches) -> [B, query_num, hidden]."""
        ids, keys = chunk_tables(np.asarray(tgt_sizes), patch_mask.shape[1], self.patches_per_side,
                                 self.resampler.embed_dim)
        return navit_features(self.vpm, self.resampler, pixel_values, patch_mask, torch.from_numpy(ids),
                              torch.from_numpy(keys).to(pixel_values.dtype), MASK_VALUES["onnx"])

    def embed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.llm.get_input_embeddings()(input_ids)

    def vision_graph(self):
        from ...processing.slicing import chunk_patch_buckets

        return vision_graph(self, chunk_patch_buckets(scale_resolution(self.config), self.vpm.config.patch_size))


def load_reference(ckpt: str | Path, dtype: torch.dtype | None = None) -> MiniCPMV:
    config = read_config(ckpt)
    model = MiniCPMV(config)
    tensors = load_safetensors_dir(ckpt)
    load_weights(model, tensors, str(ckpt))
    model.image_token_id = _unk_id(Path(ckpt))
    return model.to(dtype or torch.float32).eval()


def _unk_id(ckpt: Path) -> int:
    """MiniCPM-V writes image placeholders as ``<unk>``."""
    from tokenizers import Tokenizer

    path = ckpt / "tokenizer.json"
    if not path.is_file():
        raise CheckpointError(f"{ckpt}: no tokenizer.json. Copy the whole checkpoint directory.")
    token_id = Tokenizer.from_file(str(path)).token_to_id("<unk>")
    if token_id is None:
        raise CheckpointError(f"{path} has no <unk> token, which MiniCPM-V uses as image placeholder.")
    return token_id
