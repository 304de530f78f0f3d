"""LLaVA's vision tower + MLP projector as an mmproj GGUF for stock llama.cpp (projector type ``mlp``).

What llama.cpp's own pipeline writes (``tools/mtmd/legacy-models/llava_surgery_v2.py`` then
``convert_image_encoder_to_gguf.py --clip-model-is-vision``, with the feature layer given in the
vision config as its README says for HF-format checkpoints), written straight from the transformers
model; tests/test_llava_mmproj.py holds the two files equal tensor by tensor and key by key (with
``cls_last_positions=False``; by default the CLIP position table is rotated, see below).

* names: the legacy ones clip.cpp reads: ``v.class_embd``, ``v.patch_embd.weight``,
  ``v.position_embd.weight``, ``v.pre_ln.*``, ``v.blk.N.{attn_q,attn_k,attn_v,attn_out,ln1,ln2}.*``,
  ``v.blk.N.ffn_down`` = CLIP's ``fc1`` and ``ffn_up`` = ``fc2`` (swapped; clip.cpp notices the
  shapes and swaps them back), ``mm.0`` / ``mm.2`` = ``linear_1`` / ``linear_2``, ``model.image_newline``;
* only the encoder layers up to the feature layer are stored, ``clip.vision.block_count`` is that
  count and ``clip.vision.feature_layer`` names it (without it, llama.cpp 0.3.36 runs one layer fewer
  than the projector was trained on: ``il_last = n_layer - 1`` in tools/mtmd/models/llava.cpp on top
  of the converter's own ``n - 1``, upstream issue #25817);
* no post-layernorm (the features are taken before it); f16 for 2-D weights and the conv kernel,
  f32 for the rest (the legacy default); ``dtype="fp32"`` keeps everything f32.

What mtmd does with a CLIP tower (llama.cpp 0.3.36), and what this file does about it:

* tools/mtmd/models/llava.cpp:35-36 appends the CLS token AFTER the patches (transformers puts it
  first), :43 adds position rows ``positions`` = 0..N in that token order (clip.cpp:5193-5197), and
  clip.cpp:5199-5207 then returns rows ``1..N`` (``patch_offset = 1`` when there is a CLS) to the
  projector: upstream issue #25814, fix PR #25844 (open). With the legacy position table every
  patch gets its left neighbour's position and CLS gets the last patch's.
* Fixed here: ``v.position_embd.weight`` is written rotated by one row (rows 1..N, then row 0), so in
  mtmd's token order every patch and the CLS token get transformers' position; attention has no
  other notion of order, so every token's features are then transformers' exactly
  (``cls_last_positions``, default on; the legacy layout with it off).
* Not fixable from a GGUF file: the returned rows are still ``1..N`` of ``[patch 0..N-1, CLS]``, i.e.
  patches 1..N-1 (exact, each one row early) then the projected CLS token, and patch 0 is lost. The
  row selection is C++; leaving out ``v.class_embd`` would make it select all patches in order but
  removes CLS from every attention (different features). So a CLIP LLaVA image through mtmd differs
  from transformers' by a one-row shift plus one wrong row; tests/test_llava_mmproj.py measures it.
* SigLIP towers (OneVision) have no CLS: none of this applies, tiles equal transformers' features.

One deliberate difference from the legacy script: a SigLIP tower (OneVision) gets ``clip.use_gelu``
true (its ``gelu_pytorch_tanh`` is GELU; the script only recognises ``"gelu"`` and would select
quick-GELU).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...errors import CheckpointError
from ...manifest import Part
from .vision import feature_layer_indices

# transformers 5 module name (under model.vision_tower.) -> legacy GGUF name
_TOWER = {"embeddings.class_embedding": "v.class_embd", "embeddings.patch_embedding.weight": "v.patch_embd.weight",
          "embeddings.patch_embedding.bias": "v.patch_embd.bias",
          "embeddings.position_embedding.weight": "v.position_embd.weight",
          "pre_layrnorm.weight": "v.pre_ln.weight", "pre_layrnorm.bias": "v.pre_ln.bias"}
_LAYER = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
          "self_attn.out_proj": "attn_out", "layer_norm1": "ln1", "layer_norm2": "ln2",
          "mlp.fc1": "ffn_down", "mlp.fc2": "ffn_up"}  # fc1 -> ffn_down: the legacy (swapped) spelling
_PROJECTOR = {"linear_1": "mm.0", "linear_2": "mm.2"}


def _gguf_name(name: str, n_layers: int) -> str | None:
    """GGUF name of a vision-tower / projector tensor, None for tensors the mmproj leaves out."""
    if name in _TOWER:
        return _TOWER[name]
    if name.startswith("encoder.layers."):
        index, rest = name[len("encoder.layers."):].split(".", 1)
        if int(index) >= n_layers:
            return None  # after the feature layer: never run
        module, kind = rest.rsplit(".", 1)
        return f"v.blk.{index}.{_LAYER[module]}.{kind}"
    if name.startswith("post_layernorm.") or name.startswith("head."):
        return None  # the features are taken before the post-layernorm
    raise CheckpointError(f"vision tensor {name} has no llava mmproj name")


def mmproj_tensors(hf_model: Any, cls_last_positions: bool = True) -> tuple[dict[str, np.ndarray], int]:
    """(GGUF name -> float32 array, number of encoder layers stored). ``cls_last_positions``: the position
    table rotated for mtmd's CLS-last token order (module doc); False: the legacy converter's table."""
    config = hf_model.config
    tower = hf_model.model.vision_tower
    layers = max(feature_layer_indices(config.vision_feature_layer, len(tower.encoder.layers)))
    out: dict[str, np.ndarray] = {}
    for name, tensor in tower.state_dict().items():
        target = _gguf_name(name, layers)
        if target is not None:
            out[target] = np.ascontiguousarray(tensor.detach().float().numpy().squeeze())
    if cls_last_positions and "v.class_embd" in out:
        table = out["v.position_embd.weight"]  # [1 + N, Dv]: row 0 is CLS's position, rows 1..N the patches'
        out["v.position_embd.weight"] = np.ascontiguousarray(np.concatenate([table[1:], table[:1]]))
    for name, tensor in hf_model.model.multi_modal_projector.state_dict().items():
        module, kind = name.split(".")
        out[f"{_PROJECTOR[module]}.{kind}"] = tensor.detach().float().numpy()
    newline = getattr(hf_model.model, "image_newline", None)
    if newline is not None:
        out["model.image_newline"] = newline.detach().float().numpy()
    return out, layers


def _to_f16(name: str, data: np.ndarray) -> bool:
    """The legacy converter's f16 rule: the conv kernel and the 2-D ``.weight`` tensors."""
    return data.ndim == 4 or (data.ndim == 2 and name.endswith(".weight"))


def write_mmproj(ref: Any, path: str | Path, dtype: str = "fp16", cls_last_positions: bool = True) -> Part:
    """Write the mmproj GGUF of a LLaVA / NeXT / OneVision reference (families/llava/reference.py)."""
    import gguf

    if dtype not in ("fp16", "fp32"):
        raise CheckpointError(f"mmproj dtype {dtype!r} is not available; choose fp32 or fp16.")
    hf_model = ref.hf
    config, vision = hf_model.config, hf_model.config.vision_config
    if isinstance(config.vision_feature_layer, list):
        raise CheckpointError("several vision feature layers (Granite-style) are not written by this exporter")
    tensors, layers = mmproj_tensors(hf_model, cls_last_positions)
    processor = ref.image_processor  # the checkpoint's ProcessorConfig: mean / std as the processor uses them
    writer = gguf.GGUFWriter(str(path), arch="clip")
    writer.add_bool("clip.has_text_encoder", False)
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_bool("clip.has_llava_projector", True)
    writer.add_file_type(1 if dtype == "fp16" else 0)
    writer.add_name("edgevlm")
    writer.add_description("image encoder for LLaVA")
    writer.add_string("clip.projector_type", "mlp")
    writer.add_uint32("clip.vision.image_size", vision.image_size)
    writer.add_uint32("clip.vision.patch_size", vision.patch_size)
    writer.add_uint32("clip.vision.embedding_length", vision.hidden_size)
    writer.add_uint32("clip.vision.feed_forward_length", vision.intermediate_size)
    siglip = vision.model_type == "siglip_vision_model"
    writer.add_uint32("clip.vision.projection_dim", 0 if siglip else vision.projection_dim)
    writer.add_uint32("clip.vision.attention.head_count", vision.num_attention_heads)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", vision.layer_norm_eps)
    writer.add_uint32("clip.vision.block_count", layers)
    pinpoints = getattr(config, "image_grid_pinpoints", None)
    if pinpoints:  # written as the legacy converter writes them (transformers' (height, width) order)
        writer.add_array("clip.vision.image_grid_pinpoints", [int(v) for pair in pinpoints for v in pair])
        writer.add_string("clip.vision.mm_patch_merge_type", "spatial_unpad")
    writer.add_array("clip.vision.feature_layer", [layers])
    writer.add_array("clip.vision.image_mean", [float(v) for v in processor.mean])
    writer.add_array("clip.vision.image_std", [float(v) for v in processor.std])
    writer.add_bool("clip.use_gelu", vision.hidden_act in ("gelu", "gelu_pytorch_tanh"))
    for tensor_name, data in tensors.items():
        writer.add_tensor(tensor_name, data.astype(np.float16) if dtype == "fp16" and _to_f16(tensor_name, data)
                          else data.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Part(file=Path(path).name, format="gguf", dtype=dtype, info={
        "kind": "mmproj", "projector_type": "mlp", "block_count": layers, "n_tensors": len(tensors),
        "image_newline": "model.image_newline" in tensors,
        "position_table": ("rotated for CLS-last (mtmd)" if cls_last_positions and "v.class_embd" in tensors
                           else "as is")})
