"""Writing a vision tower + projector as llama.cpp's mtmd projector GGUF ("mmproj"), shared by the families
whose mmproj is a plain renaming of their weights (Idefics3 / SmolVLM, InternVL).

Tensor names go through gguf-py's MMPROJ name map, as llama.cpp's own converter
(``convert_hf_to_gguf.py --mmproj``, conversion/base.py ``MmprojModel``) does; the header keys are the ones
that converter writes for every vision encoder; a family adds its projector's keys. Precision follows the
converter's rule for ``--outtype f16``: 2-D+ ``.weight`` tensors f16, everything else (biases, norms,
1-D, names not ending in ``.weight``) f32, plus the tensors a family keeps f32 (position tables).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from ...errors import CheckpointError

MMPROJ_DTYPES = ("fp32", "fp16")


@dataclass
class VisionHeader:
    """The ``clip.vision.*`` keys every mmproj has (conversion/base.py ``MmprojModel.set_gguf_parameters``)."""

    projector_type: str  # gguf.VisionProjectorType value: "idefics3", "internvl", ...
    projection_dim: int  # the text model's hidden size
    image_size: int
    patch_size: int
    embedding_length: int
    feed_forward_length: int
    block_count: int
    head_count: int
    image_mean: Iterable[float]
    image_std: Iterable[float]
    layer_norm_eps: float


def gguf_names(source: dict[str, np.ndarray], n_blocks: int) -> dict[str, np.ndarray]:
    """Source (transformers) name -> gguf-py's mmproj name, for every tensor (an unknown one is an error)."""
    import gguf

    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.MMPROJ, n_blocks)
    out: dict[str, np.ndarray] = {}
    for name, data in source.items():
        target = name_map.get_name(name, try_suffixes=(".weight", ".bias"))
        if target is None:
            raise CheckpointError(f"vision tensor {name} has no mmproj GGUF name; the checkpoint has a layer the "
                                  "mmproj export does not know.")
        out[target] = np.ascontiguousarray(data, dtype=np.float32)
    return out


def write_projector_gguf(path: str | Path, tensors: dict[str, np.ndarray], header: VisionHeader, dtype: str,
                 keep_f32: Callable[[str], bool], extra: Callable[[Any], None]) -> None:
    """Write ``tensors`` (gguf names) with ``header``; ``extra(writer)`` adds the projector's own keys."""
    import gguf

    from ...export.gguf.writer import write_tensors

    if dtype not in MMPROJ_DTYPES:
        raise CheckpointError(f"mmproj dtype {dtype!r} is not available; choose fp32 or fp16.")
    writer = gguf.GGUFWriter(str(path), "clip")
    writer.add_type(gguf.GGUFType.MMPROJ)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32 if dtype == "fp32" else gguf.LlamaFileType.MOSTLY_F16)
    writer.add_clip_has_vision_encoder(True)
    writer.add_vision_projection_dim(int(header.projection_dim))
    writer.add_vision_image_size(int(header.image_size))
    writer.add_vision_patch_size(int(header.patch_size))
    writer.add_vision_embedding_length(int(header.embedding_length))
    writer.add_vision_feed_forward_length(int(header.feed_forward_length))
    writer.add_vision_block_count(int(header.block_count))
    writer.add_vision_head_count(int(header.head_count))
    writer.add_vision_image_mean([float(x) for x in header.image_mean])
    writer.add_vision_image_std([float(x) for x in header.image_std])
    writer.add_clip_projector_type(header.projector_type)
    writer.add_vision_attention_layernorm_eps(float(header.layer_norm_eps))
    extra(writer)
    write_tensors(writer, tensors, lambda name, data: dtype == "fp16" and data.ndim >= 2
                  and name.endswith(".weight") and not keep_f32(name))
