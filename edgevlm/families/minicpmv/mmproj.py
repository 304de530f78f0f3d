"""MiniCPM-V's vision tower + resampler as an mmproj GGUF that llama.cpp's mtmd loads (projector ``resampler``).

Keys and tensors follow techspec §4.3 (clip-impl.h / the legacy ``minicpmv-convert-image-encoder-to-gguf.py``).
Names come from gguf-py's MMPROJ tensor map after the same pre-transforms the converter applies:
- ``resampler.attn.in_proj_{weight,bias}`` split into ``attn.{q,k,v}``;
- ``resampler.proj`` (used as ``x @ proj``) stored transposed as a Linear weight ``resampler.proj.weight``;
- ``resampler.pos_embed_k``: a 70×70 2D sin/cos table. clip.cpp's loader requires it although its graph
  computes the table itself; gguf-py spells it ``pos_embd_k`` but clip.cpp reads ``pos_embed_k``, so the
  clip.cpp spelling is written.
The vision tower is taken with the ``vision_tower.vision_model.`` prefix, which gguf-py maps for SigLIP.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...errors import CheckpointError
from ...manifest import Part
from ...export.gguf.writer import write_tensors

POS_TABLE_SIDE = 70  # clip.cpp buckets ViT positions on a hard-coded 70x70 grid (980 / 14)


def _sincos_table(dim: int) -> np.ndarray:
    from ...processing.vision_inputs import sincos_2d

    return sincos_2d(POS_TABLE_SIDE, POS_TABLE_SIDE, dim).reshape(POS_TABLE_SIDE * POS_TABLE_SIDE, dim)


def mmproj_tensors(ref: Any) -> dict[str, np.ndarray]:
    """GGUF name -> float32 array for ``ref.vpm`` and ``ref.resampler`` (a families.minicpmv.MiniCPMV)."""
    import gguf

    n_blocks = len(ref.vpm.encoder.layers)
    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.MMPROJ, n_blocks)
    source: dict[str, np.ndarray] = {}
    for name, tensor in ref.vpm.state_dict().items():
        source["vision_tower.vision_model." + name] = tensor.detach().float().numpy()
    for name, tensor in ref.resampler.state_dict().items():
        data = tensor.detach().float().numpy()
        if name.startswith("attn.in_proj_"):
            kind = name.rsplit("_", 1)[1]  # weight | bias
            for part, chunk in zip("qkv", np.split(data, 3, axis=0)):
                source[f"resampler.attn.{part}.{kind}"] = chunk
        elif name == "proj":
            source["resampler.proj.weight"] = data.T.copy()  # x @ proj == Linear with weight proj^T
        else:
            source["resampler." + name] = data
    out: dict[str, np.ndarray] = {}
    for name, data in source.items():
        target = name_map.get_name(name, try_suffixes=(".weight", ".bias"))
        if target is None:
            raise CheckpointError(f"vision tensor {name} has no mmproj GGUF name; the checkpoint has a layer the "
                                  "MiniCPM-V mmproj export does not know.")
        if target == "v.position_embd.weight":
            data = data[None]  # [1, positions, Dv], as the reference converter writes it
        out[target] = np.ascontiguousarray(data, dtype=np.float32)
    out["resampler.pos_embed_k"] = _sincos_table(ref.resampler.embed_dim)
    return out


def write_mmproj(ref: Any, path: str | Path, dtype: str = "fp16") -> Part:
    """Write the mmproj GGUF; ``dtype`` fp16 stores 2-D weights as float16 (the usual llama.cpp mmproj), fp32 keeps all."""
    import gguf

    from .spec import VERSIONS

    if dtype not in ("fp32", "fp16"):
        raise CheckpointError(f"mmproj dtype {dtype!r} is not available; choose fp32 or fp16.")
    vcfg = ref.vpm.config
    slice_cfg = ref.config.get("slice_config") or {}
    version = VERSIONS[ref.version][1]
    image_size = int(slice_cfg.get("scale_resolution", ref.config.get("image_size", 448)))
    if vcfg.image_size // vcfg.patch_size != POS_TABLE_SIDE:
        raise CheckpointError(f"the vision tower has a {vcfg.image_size // vcfg.patch_size}-per-side position "
                              f"table; llama.cpp's MiniCPM-V graph assumes {POS_TABLE_SIDE}.")
    tensors = mmproj_tensors(ref)
    writer = gguf.GGUFWriter(str(path), "clip")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32 if dtype == "fp32" else gguf.LlamaFileType.MOSTLY_F16)
    writer.add_description("image encoder for MiniCPM-V (edgevlm)")
    writer.add_bool("clip.has_text_encoder", False)
    writer.add_clip_has_vision_encoder(True)
    writer.add_bool("clip.has_minicpmv_projector", True)
    writer.add_clip_projector_type("resampler")
    writer.add_int32("clip.minicpmv_version", version)
    writer.add_uint32("clip.minicpmv_query_num", int(ref.query_num))
    writer.add_vision_image_size(image_size)
    writer.add_vision_patch_size(int(vcfg.patch_size))
    writer.add_vision_embedding_length(int(vcfg.hidden_size))
    writer.add_vision_feed_forward_length(int(vcfg.intermediate_size))
    writer.add_vision_projection_dim(0)
    writer.add_vision_head_count(int(vcfg.num_attention_heads))
    writer.add_vision_attention_layernorm_eps(float(vcfg.layer_norm_eps))
    writer.add_vision_block_count(len(ref.vpm.encoder.layers))
    mean = (ref.config.get("norm_mean") or [0.5, 0.5, 0.5])
    std = (ref.config.get("norm_std") or [0.5, 0.5, 0.5])
    writer.add_vision_image_mean([float(x) for x in mean])
    writer.add_vision_image_std([float(x) for x in std])
    writer.add_vision_use_gelu(True)
    # f16 for 2-D weights only; the conv kernel (4-D), norms, biases and tables stay f32.
    write_tensors(writer, tensors, lambda name, data: dtype == "fp16" and data.ndim == 2
                  and name.endswith(".weight") and "position_embd" not in name)
    return Part(file=Path(path).name, format="gguf", dtype=dtype, info={
        "kind": "mmproj", "projector_type": "resampler", "minicpmv_version": version,
        "query_num": int(ref.query_num), "image_size": image_size, "n_tensors": len(tensors)})
