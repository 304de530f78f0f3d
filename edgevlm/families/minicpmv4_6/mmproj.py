"""MiniCPM-V 4.6 / 4.7 vision part as an mmproj GGUF for llama.cpp's mtmd (projector ``minicpmv4_6``).

What llama.cpp's own converter writes for this projector (vendored conversion/minicpm.py
``MiniCPMV4_6VisionModel``; tensor names from tools/mtmd/clip-impl.h, read by clip.cpp's
PROJECTOR_TYPE_MINICPMV4_6 loader and tools/mtmd/models/minicpmv.cpp): the SigLIP tower under
``v.*``, the window merger under ``v.vit_merger.*``, the merger MLP as ``mm.input_norm`` / ``mm.up``
/ ``mm.down``. The installed gguf-py (PyPI) does not know these names yet, so they are spelled here.

The downsample mode is baked into the file: "4x" drops the ``v.vit_merger.*`` tensors and writes
``clip.vision.projector.scale_factor`` 2 (4 for "16x"); ``clip.vision.wa_layer_indexes`` carries
``insert_layer_id`` and ``clip.vision.image_size`` the slice resolution (scale_resolution, 448), not
the 980 px the 70x70 position table was trained for. tests/test_minicpmv46_mmproj.py compares this
writer with llama.cpp's converter on the tiny checkpoints, tensor by tensor and key by key.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import CheckpointError
from ...manifest import Part

PROJECTOR_TYPE = "minicpmv4_6"

# transformers module name (under model.) -> mmproj GGUF name; {0} is the layer number.
_NAMES = [
    (r"vision_tower\.embeddings\.patch_embedding\.", "v.patch_embd."),
    (r"vision_tower\.embeddings\.position_embedding\.", "v.position_embd."),
    (r"vision_tower\.encoder\.layers\.(\d+)\.layer_norm1\.", "v.blk.{0}.ln1."),
    (r"vision_tower\.encoder\.layers\.(\d+)\.layer_norm2\.", "v.blk.{0}.ln2."),
    (r"vision_tower\.encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.", "v.blk.{0}.attn_{1}."),
    (r"vision_tower\.encoder\.layers\.(\d+)\.self_attn\.out_proj\.", "v.blk.{0}.attn_out."),
    (r"vision_tower\.encoder\.layers\.(\d+)\.mlp\.fc1\.", "v.blk.{0}.ffn_up."),
    (r"vision_tower\.encoder\.layers\.(\d+)\.mlp\.fc2\.", "v.blk.{0}.ffn_down."),
    (r"vision_tower\.post_layernorm\.", "v.post_ln."),
    (r"vision_tower\.vit_merger\.layer_norm1\.", "v.vit_merger.ln1."),
    (r"vision_tower\.vit_merger\.self_attn\.([qkv])_proj\.", "v.vit_merger.attn_{0}."),
    (r"vision_tower\.vit_merger\.self_attn\.out_proj\.", "v.vit_merger.attn_out."),
    (r"vision_tower\.vit_merger\.pre_norm\.", "v.vit_merger.ds_ln."),
    (r"vision_tower\.vit_merger\.linear_1\.", "v.vit_merger.ds_ffn_up."),
    (r"vision_tower\.vit_merger\.linear_2\.", "v.vit_merger.ds_ffn_down."),
    (r"merger\.mlp\.0\.pre_norm\.", "mm.input_norm."),
    (r"merger\.mlp\.0\.linear_1\.", "mm.up."),
    (r"merger\.mlp\.0\.linear_2\.", "mm.down."),
]


def gguf_name(module_name: str) -> str | None:
    """The mmproj name of a ``model.vision_tower.*`` / ``model.merger.*`` tensor (None if it has none)."""
    for pattern, target in _NAMES:
        match = re.match(pattern + r"(weight|bias)$", module_name)
        if match:
            *groups, kind = match.groups()
            return target.format(*groups) + kind
    return None


def mmproj_tensors(hf_model: Any, downsample_mode: str) -> dict[str, np.ndarray]:
    """GGUF name -> float32 array of the vision tower and merger (the window merger only in "16x")."""
    model = hf_model.model
    out: dict[str, np.ndarray] = {}
    for prefix, module in (("vision_tower.", model.vision_tower), ("merger.", model.merger)):
        for name, tensor in module.state_dict().items():
            full = prefix + name
            if downsample_mode == "4x" and full.startswith("vision_tower.vit_merger."):
                continue  # the converter drops the merger llama.cpp will not run
            target = gguf_name(full)
            if target is None:
                raise CheckpointError(f"vision tensor model.{full} has no minicpmv4_6 mmproj name; the checkpoint has "
                                      "a layer llama.cpp's MiniCPM-V 4.6 projector does not know.")
            out[target] = np.ascontiguousarray(tensor.detach().float().numpy())
    return out


def write_mmproj(ref: Any, path: str | Path, dtype: str = "fp16") -> Part:
    """Write the mmproj GGUF of ``ref`` (reference.py: transformers' MiniCPMV4_{6,7}ForConditionalGeneration) in
    its checkpoint's downsample mode to ``path``.

    ``dtype`` fp16 stores 2-D+ weights as float16 (as the published mmproj), fp32 keeps every tensor float32.
    """
    import gguf

    from ...export.gguf.writer import write_tensors

    if dtype not in ("fp32", "fp16"):
        raise CheckpointError(f"mmproj dtype {dtype!r} is not available; choose fp32 or fp16.")
    hf_model, downsample_mode = ref.hf, ref.downsample_mode
    image_mean, image_std = ref.processor_config.get("image_mean", (0.5,) * 3), ref.processor_config.get("image_std", (0.5,) * 3)
    scale_resolution = ref.scale_resolution
    config = hf_model.config
    vision = config.vision_config
    if vision.image_size // vision.patch_size != 70:
        raise CheckpointError(f"the vision tower has a {vision.image_size // vision.patch_size}-per-side position "
                              "table; llama.cpp's MiniCPM-V 4.6 graph buckets positions on 70 per side.")
    if config.merger_times != 1:
        raise CheckpointError(f"merger_times {config.merger_times}: llama.cpp's minicpmv4_6 projector has one "
                              "merger MLP.")
    tensors = mmproj_tensors(hf_model, downsample_mode)
    writer = gguf.GGUFWriter(str(path), "clip")
    writer.add_type("mmproj")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32 if dtype == "fp32" else gguf.LlamaFileType.MOSTLY_F16)
    writer.add_clip_has_vision_encoder(True)
    writer.add_vision_projection_dim(int(config.text_config.hidden_size))
    writer.add_vision_image_size(int(scale_resolution))  # the slice size clip.cpp plans with (minicpm.py)
    writer.add_vision_patch_size(int(vision.patch_size))
    writer.add_vision_embedding_length(int(vision.hidden_size))
    writer.add_vision_feed_forward_length(int(vision.intermediate_size))
    writer.add_vision_block_count(int(vision.num_hidden_layers))
    writer.add_vision_head_count(int(vision.num_attention_heads))
    writer.add_vision_image_mean([float(x) for x in image_mean])
    writer.add_vision_image_std([float(x) for x in image_std])
    writer.add_clip_projector_type(PROJECTOR_TYPE)
    writer.add_vision_projector_scale_factor(2 if downsample_mode == "4x" else 4)
    writer.add_vision_wa_layer_indexes([int(config.insert_layer_id)])  # clip.cpp borrows it for the merger's place
    writer.add_vision_use_gelu(True)
    writer.add_vision_attention_layernorm_eps(float(vision.layer_norm_eps))
    # The converter's f16 rule (conversion/base.py prepare_tensors): weights of 2+ dims, the patch kernel included,
    # go f16; biases, norms and the position table stay f32.
    write_tensors(writer, tensors, lambda name, data: dtype == "fp16" and data.ndim >= 2 and name.endswith(".weight")
                  and "position_embd" not in name)
    return Part(file=Path(path).name, format="gguf", dtype=dtype, info={
        "kind": "mmproj", "projector_type": PROJECTOR_TYPE, "downsample_mode": downsample_mode,
        "image_size": int(scale_resolution), "n_tensors": len(tensors)})
