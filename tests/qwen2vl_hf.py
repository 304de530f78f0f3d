"""transformers' own Qwen2-VL / Qwen2.5-VL processor and model for the tiny checkpoints (tests only).

The processor comes from the family's reference (``hf_processor``: transformers' own, with an empty
video slot because transformers 5 builds video processors on torchvision, not installed here).
"""

from __future__ import annotations

import numpy as np

from edgevlm.families.qwen2_vl.reference import hf_processor  # noqa: F401  (re-exported for the tests)


def hf_model(ckpt):
    import torch
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(str(ckpt), dtype=torch.float32).eval()


def synthetic_image(width: int, height: int, seed: int = 0):
    """Deterministic RGB noise plus ramps (edges and gradients, so resize filters matter)."""
    from PIL import Image

    rng = np.random.default_rng(seed * 7919 + width * 31 + height)
    noise = rng.integers(0, 128, (height, width, 3), dtype=np.uint16)
    ramp_x = (np.arange(width) * 127 // max(width - 1, 1))[None, :]
    ramp_y = (np.arange(height) * 127 // max(height - 1, 1))[:, None]
    noise[..., 0] += ramp_x.astype(np.uint16)
    noise[..., 1] += ramp_y.astype(np.uint16)
    noise[..., 2] += ((ramp_x + ramp_y) // 2).astype(np.uint16)
    return Image.fromarray(noise.astype(np.uint8), "RGB")


def chat(*turns):
    """Messages in the processor's format: each turn (role, [str | "IMAGE", ...])."""
    return [{"role": role, "content": [{"type": "image"} if part == "IMAGE" else {"type": "text", "text": part}
                                       for part in parts]} for role, parts in turns]
