"""InternVL as llama.cpp's mtmd projector ``internvl``: InternViT + the LayerNorm/MLP projector in one GGUF.

llama.cpp's converter (conversion/internvl.py) registers OpenGVLab's original ``InternVisionModel``
layout, and maps transformers' -hf module names only for Intern-S1 (``model.vision_tower.*``; the projector
``model.multi_modal_projector.{layer_norm,linear_1,linear_2}`` renamed to ``mlp1.{0,1,3}``): this writer
takes those same names from the -hf reference, so the result is the converter's (tests/test_tiles_gguf.py
converts a copy of the tiny checkpoint in the Intern-S1 form and compares tensor by tensor, key by key).
``projector.scale_factor`` = 1 / downsample_ratio; ``preproc_min/max_tiles`` from the processor.

One deliberate difference from the converter: the position table is stored rolled by one row. mtmd's
graph (tools/mtmd/models/internvl.cpp) appends the CLS token AFTER the patches and adds the table in
order, so patch k would get row k (the reference's CLS row for k = 0) instead of row k + 1; features then
drift from transformers' (cosine 0.97 per tile on the tiny checkpoint). The encoder has no causal mask and
no rotary positions, so only the rows matter: rolled, mtmd computes exactly the reference (cosine 1.0,
tests/test_tiles_gguf.py, which also pins the converter's unrolled table's divergence).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...errors import CheckpointError
from ...manifest import Part
from ..common.mmproj import VisionHeader, gguf_names, write_projector_gguf
from .spec import processor_config

PROJECTOR = {"layer_norm": "mlp1.0", "linear_1": "mlp1.1", "linear_2": "mlp1.3"}  # -hf -> original names


def _source_name(name: str) -> str:
    """The name llama.cpp's converter hands its tensor map (conversion/internvl.py ``filter_tensors``)."""
    prefix = "model.multi_modal_projector."
    if name.startswith(prefix):
        layer, kind = name[len(prefix):].rsplit(".", 1)
        return f"{PROJECTOR[layer]}.{kind}"
    if (".lambda_" in name or "position_embedding" in name) and not name.endswith(".weight"):
        return name + ".weight"
    return name


def write_mmproj(ref: Any, path: str | Path, dtype: str = "fp16") -> Part:
    cfg = ref.hf.config
    vcfg = cfg.vision_config
    if vcfg.hidden_act not in ("gelu", "silu") or getattr(vcfg, "use_qk_norm", False) or vcfg.norm_type != "layer_norm":
        raise CheckpointError(f"this InternViT (hidden_act {vcfg.hidden_act!r}, qk norm {vcfg.use_qk_norm}, norm "
                              f"{vcfg.norm_type!r}) has no llama.cpp mmproj here; InternVL 2.5 / 3 1B-8B use gelu, "
                              "no qk norm, layer_norm. Export --format onnx instead.")
    processor = processor_config(ref.checkpoint, cfg.to_dict())
    source = {_source_name(name): tensor.detach().float().numpy() for name, tensor in ref.hf.state_dict().items()
              if name.startswith(("model.vision_tower.", "model.multi_modal_projector."))}
    tensors = gguf_names(source, vcfg.num_hidden_layers)
    # [1, 1 + patches, D]: mtmd's token k (patch k, CLS last) must read the reference's row k + 1 (CLS: row 0)
    tensors["v.position_embd.weight"] = np.roll(tensors["v.position_embd.weight"], -1, axis=1)
    tile = processor.image_size
    header = VisionHeader("internvl", cfg.text_config.hidden_size, tile, processor.patch_size, vcfg.hidden_size,
                          vcfg.intermediate_size, vcfg.num_hidden_layers, vcfg.num_attention_heads, processor.mean,
                          processor.std, vcfg.layer_norm_eps)
    scale = int(1.0 / cfg.downsample_ratio)

    def extra(writer: Any) -> None:
        (writer.add_vision_use_gelu if vcfg.hidden_act == "gelu" else writer.add_vision_use_silu)(True)
        writer.add_vision_projector_scale_factor(scale)
        writer.add_vision_preproc_min_tiles(int(processor.options["min_tiles"]))
        writer.add_vision_preproc_max_tiles(int(processor.options["max_tiles"]))

    write_projector_gguf(path, tensors, header, dtype, lambda name: name.startswith("v.position_embd"), extra)
    return Part(file=Path(path).name, format="gguf", dtype=dtype, info={
        "kind": "mmproj", "projector_type": "internvl", "scale_factor": scale, "image_size": int(tile),
        "n_tensors": len(tensors)})
