"""transformers' own Qwen2-VL / Qwen2.5-VL processor and model for the tiny checkpoints (tests only).

``Qwen2VLProcessor`` takes a video processor, and transformers 5 builds every video processor on
torchvision, which this environment does not install (installing it would switch every image
processor to the torchvision backend). These tests never pass videos, so the video slot gets an
empty ``VideoProcessorMixin``; the image processor, the tokenizer, the chat template, the
placeholder expansion and the model are transformers' own, loaded from the checkpoint by the Auto
classes. (The tiled-families branch carries the same helper in tests/tiles_reference.py: one copy
should stay when both are merged.)
"""

from __future__ import annotations

import numpy as np


def hf_processor(ckpt):
    from transformers import AutoProcessor, processing_utils
    from transformers.utils import is_torchvision_available
    from transformers.video_processing_utils import VideoProcessorMixin

    if not is_torchvision_available():  # the processor's class check looks the base class up by name
        processing_utils.transformers_module.VideoProcessorMixin = VideoProcessorMixin

    class NoVideo(VideoProcessorMixin):
        """Stands in for the torchvision-only video processor; calling it is an error."""

        merge_size, temporal_patch_size = 2, 2

        def __call__(self, *args, **kwargs):
            raise RuntimeError("videos are not part of these tests")

    return AutoProcessor.from_pretrained(str(ckpt), video_processor=NoVideo())


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
