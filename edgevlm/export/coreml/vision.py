"""The vision part as Core ML: one chunk of preprocessed pixels -> image features [1, tokens, hidden].

The Neural Engine compiles fixed shapes, so every input has either one fixed shape or a small set of
enumerated shapes (batch is always 1; the runtime loops over chunks):
- fixed-size images (PaliGemma, Gemma 3): pixel_values [1, 3, H, W] -> features [1, N, D];
- navit slices (MiniCPM-V): a chunk of h x w patches is zero-padded to the smallest enumerated patch
  count ``n >= h*w``: pixel_values [1, 3, p, n*p], patch_attention_mask float32 [1, n] (1 = real patch),
  position_ids int32 [1, n], key_pos [1, n, D] -> features [1, query_num, D]. The mask keeps padded
  patches out of every attention, so padding does not change the features. position_ids and key_pos
  depend on (h, w) and are computed by the runtime with numpy (edgevlm.runtime.vision_inputs), exactly
  as for the ONNX part.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ...manifest import Part
from .common import DEFAULT_COMPUTE_UNITS, MASK_VALUE, convert, ct, io_spec, package_manifest

# Enumerated patch counts as fractions of the square chunk (scale_resolution / patch)^2. LLaVA-UHD
# resizes every chunk to about that area: over a scan of 33,000 image sizes up to 4200 px, chunk patch
# counts ranged 778..1191 for 448 / 14 (median 1020, 99.9% <= 1116), so 768, 1024, 1088, 1152, 1280
# waste at most ~10% on padding for almost every chunk and cover them all.
SLICE_BUCKETS = (0.75, 1.0, 1.0625, 1.125, 1.25)


def slice_shapes(scale_resolution: int, patch_size: int, fractions: tuple[float, ...] = SLICE_BUCKETS) -> list[int]:
    """Enumerated patch counts for a navit vision part (multiples of 16, ascending)."""
    square = (scale_resolution // patch_size) ** 2
    return sorted({int(math.ceil(square * f / 16) * 16) for f in fractions})


class NavitVisionCoreML(nn.Module):
    """MiniCPM-V's vpm + resampler for one padded chunk (same math as MiniCPMV.image_features).

    Differs from the ONNX wrapper only where Core ML needs it: the patch mask is float (Core ML has no
    bool inputs) and the additive mask uses an fp16-finite value, since ``0 * finfo(float32).min``
    becomes ``0 * -inf = NaN`` once the model runs in float16.
    """

    def __init__(self, ref: Any):
        super().__init__()
        self.vpm = ref.vpm
        self.resampler = ref.resampler

    def forward(self, pixel_values, patch_attention_mask, position_ids, key_pos):
        emb = self.vpm.embeddings.patch_embedding(pixel_values)  # [1, Dv, 1, n]
        emb = emb.flatten(2).transpose(1, 2)  # [1, n, Dv]
        emb = emb + self.vpm.embeddings.position_embedding(position_ids)
        additive = (1.0 - patch_attention_mask) * MASK_VALUE  # [1, n]: 0 for real patches
        hidden = self.vpm.encoder(inputs_embeds=emb, attention_mask=additive[:, None, None, :]).last_hidden_state
        tokens = self.vpm.post_layernorm(hidden)  # [1, n, Dv]
        return self.resampler(tokens, key_pos, patch_attention_mask < 0.5)  # [1, Q, D]


class FixedVisionCoreML(nn.Module):
    def __init__(self, ref: Any):
        super().__init__()
        self.ref = ref

    def forward(self, pixel_values):
        return self.ref.image_features(pixel_values)  # [1, tokens, D]


def is_navit(ref: Any) -> bool:
    return hasattr(ref, "resampler") and hasattr(ref, "vpm")


def navit_example(ref: Any, n: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Inputs of one chunk padded to n patches (a 2 x 3 grid of real patches) for tracing and tests."""
    from ...runtime.vision_inputs import navit_position_ids, resampler_key_pos

    patch, dim = ref.vpm.config.patch_size, ref.resampler.embed_dim
    tgt = np.array([[2, 3]], np.int32)
    real = 6
    pixels = torch.randn(1, 3, patch, n * patch, generator=torch.Generator().manual_seed(seed))
    pixels[..., real * patch:] = 0
    mask = torch.zeros(1, n)
    mask[:, :real] = 1
    return (pixels, mask, torch.from_numpy(navit_position_ids(tgt, n, ref.patches_per_side).astype(np.int32)),
            torch.from_numpy(resampler_key_pos(tgt, dim, n)))


def export_vision(ref: Any, root: str | Path, dtype: str = "fp16", slice_patches: list[int] | None = None,
                  package: str = "vision.mlpackage", scale_resolution: int = 448) -> Part:
    """Convert the vision tower + connector of ``ref`` to ``root/package``; returns its Part."""
    coremltools = ct()
    path = Path(root) / package
    f32 = np.float32
    if is_navit(ref):
        patch, dim = ref.vpm.config.patch_size, ref.resampler.embed_dim
        shapes = slice_patches or slice_shapes(scale_resolution, patch)
        default = shapes[-1]

        def enum(make):
            return coremltools.EnumeratedShapes(shapes=[make(n) for n in shapes], default=make(default))

        inputs = [
            coremltools.TensorType(name="pixel_values", shape=enum(lambda n: (1, 3, patch, n * patch)), dtype=f32),
            coremltools.TensorType(name="patch_attention_mask", shape=enum(lambda n: (1, n)), dtype=f32),
            coremltools.TensorType(name="position_ids", shape=enum(lambda n: (1, n)), dtype=np.int32),
            coremltools.TensorType(name="key_pos", shape=enum(lambda n: (1, n, dim)), dtype=f32),
        ]
        module = NavitVisionCoreML(ref).float()
        convert(module, navit_example(ref, shapes[0]), inputs, [coremltools.TensorType(name="features", dtype=f32)],
                path, dtype)
        extra = vision_extra(ref, shapes)
    else:
        cfg = ref.hf.config.vision_config
        example = (torch.randn(1, 3, cfg.image_size, cfg.image_size, generator=torch.Generator().manual_seed(0)),)
        module = FixedVisionCoreML(ref).float()
        convert(module, example, [coremltools.TensorType(name="pixel_values", shape=example[0].shape, dtype=f32)],
                [coremltools.TensorType(name="features", dtype=f32)], path, dtype)
        extra = vision_extra(ref)
    inputs_spec, outputs_spec, _ = io_spec(path)
    extra.update(package=package, compute_units=DEFAULT_COMPUTE_UNITS)
    return Part(file=package_manifest(package), format="mlpackage", inputs=inputs_spec, outputs=outputs_spec,
                dtype=dtype, extra=extra)


def vision_extra(ref: Any, slice_patches: list[int] | None = None, scale_resolution: int = 448) -> dict[str, Any]:
    """What the runtime needs to feed the vision package (no conversion needed to compute it)."""
    if is_navit(ref):
        patch = ref.vpm.config.patch_size
        return {"kind": "navit_slices", "patch_size": patch, "patches_per_side": ref.patches_per_side,
                "embed_dim": ref.resampler.embed_dim, "tokens_per_chunk": ref.query_num,
                "slice_patches": list(slice_patches or slice_shapes(scale_resolution, patch)), "max_batch": 1,
                "derived_inputs": {"position_ids": "navit_position_ids", "key_pos": "resampler_key_pos"}}
    cfg = ref.hf.config.vision_config
    with torch.no_grad():
        tokens = ref.image_features(torch.zeros(1, 3, cfg.image_size, cfg.image_size)).shape[1]
    return {"kind": "fixed", "image_size": cfg.image_size, "tokens_per_chunk": int(tokens), "max_batch": 1,
            "derived_inputs": {}}
