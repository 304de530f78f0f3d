"""The Qwen2-VL / Qwen2.5-VL vision tower + merger as the mmproj GGUF llama.cpp's mtmd loads
(projectors ``qwen2vl_merger`` / ``qwen2.5vl_merger``).

Keys, tensor names and transforms are those of llama.cpp's own converter (vendored
``conversion/qwenvl.py`` ``Qwen2VLVisionModel`` + ``conversion/base.py`` ``MmprojModel``; the test
holds our file against its output tensor by tensor):
- ``attn.qkv`` split into ``attn_q`` / ``attn_k`` / ``attn_v``;
- the Conv3d patch embedding (temporal patch 2) split into two Conv2d kernels ``v.patch_embd.weight``
  and ``v.patch_embd.weight.1`` (mtmd feeds a still image to both and adds them);
- names from gguf-py's MMPROJ map over the published ``visual.*`` names (``merger.ln_q`` ->
  ``v.post_ln``, ``merger.mlp.{0,2}`` -> ``mm.{0,2}``);
- 2.5: ``clip.use_silu`` and ``clip.vision.n_wa_pattern`` = period of ``fullatt_block_indexes``
  (llama.cpp requires a regular one); the layer-norm epsilon is the text model's ``rms_norm_eps``
  and the image size 560, as the converter writes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...errors import CheckpointError
from ...export.gguf.writer import write_tensors
from ...manifest import Part

PROJECTORS = {"qwen2_vl": "QWEN2VL", "qwen2_5_vl": "QWEN25VL"}  # model_type -> gguf.VisionProjectorType member
DEFAULT_IMAGE_SIZE = 560  # what the converter writes when the vision config has none


def wa_pattern(full_blocks: list[int]) -> int:
    """llama.cpp's window-attention period: block i is full attention when (i + 1) % period == 0."""
    period = full_blocks[0] + 1
    if any(b - a != period for a, b in zip(full_blocks, full_blocks[1:])):
        raise CheckpointError(f"fullatt_block_indexes {full_blocks} is not regular; llama.cpp's Qwen2.5-VL graph "
                              "needs full-attention blocks at a fixed period.")
    return period


def mmproj_tensors(visual: Any) -> dict[str, np.ndarray]:
    """GGUF name -> float32 array for transformers' vision tower + merger (``model.visual``)."""
    import gguf

    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.MMPROJ, len(visual.blocks))
    out: dict[str, np.ndarray] = {}
    for name, tensor in visual.state_dict().items():
        data = tensor.detach().float().numpy()
        if name == "patch_embed.proj.weight":  # Conv3d [D, C, 2, p, p] -> two Conv2d [D, C, p, p]
            if data.shape[2] != 2:
                raise CheckpointError(f"temporal_patch_size {data.shape[2]}: llama.cpp's Qwen2-VL graph takes 2.")
            out["v.patch_embd.weight"] = np.ascontiguousarray(data[:, :, 0])
            out["v.patch_embd.weight.1"] = np.ascontiguousarray(data[:, :, 1])
            continue
        parts = [(name, data)]
        if ".qkv." in name:
            parts = [(name.replace("qkv", q), chunk) for q, chunk in zip("qkv", np.split(data, 3, axis=0))]
        for source, array in parts:
            target = name_map.get_name("visual." + source, try_suffixes=(".weight", ".bias"))
            if target is None:
                raise CheckpointError(f"vision tensor visual.{source} has no mmproj GGUF name; the checkpoint has a "
                                      "layer llama.cpp's Qwen2-VL projector does not know.")
            out[target] = np.ascontiguousarray(array, dtype=np.float32)
    return out


def write_mmproj(ref: Any, path: str | Path, dtype: str = "fp16") -> Part:
    """Write the mmproj GGUF; ``dtype`` fp16 stores matrices and the patch kernels as float16 (as the
    converter's f16), fp32 keeps everything float32."""
    import gguf

    if dtype not in ("fp32", "fp16"):
        raise CheckpointError(f"mmproj dtype {dtype!r} is not available; choose fp32 or fp16.")
    hf_config = ref.hf.config
    model_type = hf_config.model_type
    visual = ref.hf.model.visual
    vcfg = visual.config
    projector = getattr(gguf.VisionProjectorType, PROJECTORS[model_type])
    tensors = mmproj_tensors(visual)
    width = getattr(vcfg, "embed_dim", None) or vcfg.hidden_size  # 2: embed_dim; 2.5: hidden_size
    # 2: the converter takes the vision config's hidden_size (the LLM width) as feed_forward_length
    ffn = vcfg.hidden_size if model_type == "qwen2_vl" else vcfg.intermediate_size
    preprocessor = ref.processor_settings
    writer = gguf.GGUFWriter(str(path), "clip")
    writer.add_type(gguf.GGUFType.MMPROJ)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32 if dtype == "fp32" else gguf.LlamaFileType.MOSTLY_F16)
    writer.add_description(f"image encoder for {model_type} (edgevlm)")
    writer.add_clip_has_vision_encoder(True)
    writer.add_vision_projection_dim(int(ref.text.hidden_size))
    writer.add_vision_image_size(int(getattr(vcfg, "image_size", None) or DEFAULT_IMAGE_SIZE))
    writer.add_vision_patch_size(int(vcfg.patch_size))
    writer.add_vision_embedding_length(int(width))
    writer.add_vision_feed_forward_length(int(ffn))
    writer.add_vision_block_count(len(visual.blocks))
    writer.add_vision_head_count(int(vcfg.num_heads))
    writer.add_vision_image_mean([float(x) for x in preprocessor.mean])
    writer.add_vision_image_std([float(x) for x in preprocessor.std])
    writer.add_clip_projector_type(projector)
    if model_type == "qwen2_5_vl":
        writer.add_vision_use_silu(True)
        writer.add_vision_n_wa_pattern(wa_pattern(list(vcfg.fullatt_block_indexes)))
    writer.add_vision_attention_layernorm_eps(float(getattr(hf_config.text_config, "rms_norm_eps", 1e-6)))
    write_tensors(writer, tensors, lambda name, data: dtype == "fp16" and (data.ndim == 2 or "patch_embd" in name))
    return Part(file=Path(path).name, format="gguf", dtype=dtype, info={
        "kind": "mmproj", "projector_type": projector, "n_tensors": len(tensors)})
