"""transformers' own processor inputs for the prefix-LM / image-block families, and the block ids the
generic runtime's layout gives the same prompt (shared by the ONNX and Core ML mask tests)."""

from __future__ import annotations

import numpy as np


def processor_inputs(ckpt, name):
    """A small random image and a prompt through the checkpoint's AutoProcessor (PyTorch tensors)."""
    from PIL import Image
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(str(ckpt))
    image = Image.fromarray((np.random.default_rng(0).random((64, 80, 3)) * 255).astype(np.uint8))
    if name.startswith("paligemma"):
        text = "<image>caption en"
    else:
        text = "<start_of_turn>user\n<start_of_image>describe<end_of_turn>\n<start_of_turn>model\n"
    return processor(images=image, text=text, return_tensors="pt")


def block_ids(name, token_type_ids):
    """What the generic runtime's layout gives: PaliGemma's whole prompt is block 0 (prefix-LM);
    every Gemma 3 image is its own block."""
    tt = token_type_ids[0].numpy()
    if name.startswith("paligemma"):
        return np.where(tt == 0, 0, -1).astype(np.int32)
    image = tt == 1
    start = image & ~np.r_[False, image[:-1]]
    return np.where(image, np.cumsum(start) - 1, -1).astype(np.int32)
