"""SmolVLM / Idefics3 as llama.cpp's mtmd projector ``idefics3``: the SigLIP tower + connector in one GGUF.

Follows llama.cpp's converter (conversion/smolvlm.py, checked tensor by tensor and key by key in
tests/test_tiles_gguf.py): the tower (``model.vision_model.*``) and the connector's projection
(``model.connector.modality_projection.proj`` -> ``mm.model.fc``; mtmd does the pixel shuffle itself,
models/siglip.cpp), the embeddings kept f32, ``projector.scale_factor`` = the pixel-shuffle factor and
``preproc_image_size`` = the processor's ``size.longest_edge`` (mtmd tiles raw images itself).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import CheckpointError
from ...manifest import Part
from ..common.mmproj import VisionHeader, gguf_names, write_projector_gguf
from .spec import processor_config


def check_double_newline(checkpoint: str | Path) -> None:
    """mtmd builds this projector's prompt with the token "\\n\\n" (before ``<global-img>``) and aborts the
    process (GGML_ASSERT in mtmd-helper) when the vocabulary has none: refuse before writing anything."""
    from ...export.gguf.tokenizer import vocab_tokens

    if not {"ĊĊ", "\n\n"} & set(vocab_tokens(checkpoint)):  # byte-level spelling, plain spelling
        raise CheckpointError(f"{Path(checkpoint) / 'tokenizer.json'}: the vocabulary has no single '\\n\\n' token, "
                              "which llama.cpp's mtmd needs for SmolVLM / Idefics3 image prompts (it would abort). Use "
                              "the checkpoint's published tokenizer.json, or export ONNX (--format onnx), which does "
                              "not need it.")


def write_mmproj(ref: Any, path: str | Path, dtype: str = "fp16") -> Part:
    check_double_newline(ref.checkpoint)
    cfg, vcfg = ref.hf.config, ref.hf.config.vision_config
    processor = processor_config(ref.checkpoint, cfg.to_dict())
    source = {name: tensor.detach().float().numpy() for name, tensor in ref.hf.state_dict().items()
              if name.startswith(("model.vision_model.", "model.connector."))}
    tensors = gguf_names(source, vcfg.num_hidden_layers)
    header = VisionHeader("idefics3", cfg.text_config.hidden_size, vcfg.image_size, vcfg.patch_size,
                          vcfg.hidden_size, vcfg.intermediate_size, vcfg.num_hidden_layers, vcfg.num_attention_heads,
                          processor.mean, processor.std, vcfg.layer_norm_eps)

    def extra(writer: Any) -> None:
        writer.add_vision_projector_scale_factor(int(cfg.scale_factor))
        writer.add_vision_use_gelu(True)
        writer.add_vision_preproc_image_size(int(processor.options["longest_edge"]))

    # the converter keeps every ".embeddings." tensor (patch conv, position table) f32
    write_projector_gguf(path, tensors, header, dtype,
                         lambda name: name.startswith(("v.patch_embd", "v.position_embd")), extra)
    return Part(file=Path(path).name, format="gguf", dtype=dtype, info={
        "kind": "mmproj", "projector_type": "idefics3", "scale_factor": int(cfg.scale_factor),
        "image_size": int(vcfg.image_size), "n_tensors": len(tensors)})
