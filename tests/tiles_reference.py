"""transformers' own processors for the tiled families (SmolVLM / Idefics3 / InternVL), shared by their tests.

SmolVLMProcessor and InternVLProcessor take a video processor, and transformers 5 builds every video
processor on torchvision, which this environment does not install (installing it would switch every
image processor to the torchvision backend). The tests never pass videos, so the video slot gets an
empty ``VideoProcessorMixin`` (and transformers, which without torchvision does not export that
base class by name, is told where it is): the image processor, the tokenizer, the prompt expansion
and the model are transformers' own, loaded from the checkpoint directory by ``AutoProcessor``.
"""

from __future__ import annotations

import numpy as np


def hf_processor(ckpt, load=None):
    """transformers' processor of a tiny checkpoint, on the Pillow backend (the one our tilers match).

    ``load``: the ``AutoProcessor.from_pretrained`` to call (a test that routes the export check's own
    ``AutoProcessor`` here passes the original)."""
    from pathlib import Path

    from transformers import AutoProcessor, processing_utils
    from transformers.utils import is_torchvision_available
    from transformers.video_processing_utils import VideoProcessorMixin

    if not is_torchvision_available():  # the processor's class check looks the base class up by name
        processing_utils.transformers_module.VideoProcessorMixin = VideoProcessorMixin

    class NoVideo(VideoProcessorMixin):
        """Stands in for the torchvision-only video processor; calling it is an error."""

        num_frames, fps = 64, 1  # read (not used for images) by SmolVLMProcessor.apply_chat_template

        def __call__(self, *args, **kwargs):
            raise RuntimeError("videos are not part of these tests")

    kwargs = {} if "Idefics3" in (Path(ckpt) / "processor_config.json").read_text() else {"video_processor": NoVideo()}
    return (load or AutoProcessor.from_pretrained)(str(ckpt), backend="pil", **kwargs)


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


SLOW_PIXELS = 1_000_000  # golden pixel cases over this many input pixels run in the slow tier (CI time)


def golden_cases(cases, every: int = 4):
    """pytest params of the golden pixel cases: every ``every``-th small one in the default tier (a tiled image
    is up to 17 tiles of 512 x 512, so all 208 cost about a minute), all of them in the slow tier."""
    import pytest

    return [pytest.param(c, id=f"{c['size'][0]}x{c['size'][1]}",
                         marks=[pytest.mark.slow] if i % every or c["size"][0] * c["size"][1] > SLOW_PIXELS else [])
            for i, c in enumerate(cases)]
