"""The PyTorch reference of LLaVA 1.5 / NeXT / OneVision, seen as parts (transformers' own code).

* ``load_model`` / ``load_processor``: transformers' ``AutoModelForImageTextToText`` and
  ``AutoProcessor`` (OneVision's processor without its video half when torchvision is missing,
  see ``OnevisionImagesProcessor``).
* ``reference_image_features``: one call of transformers' ``get_image_features`` that returns both
  sides of the ONNX/numpy boundary (see vision.py): the projector's output per tile, captured with
  a forward hook, and the packed features per image (after unpadding, OneVision's pooling and the
  newline rows) that the language model receives.
* ``image_newline``: the learned row-end embedding the numpy packing appends.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..base import read_config


def _onevision_images_processor_class():
    from transformers import LlavaOnevisionProcessor

    class OnevisionImagesProcessor(LlavaOnevisionProcessor):
        """transformers' ``LlavaOnevisionProcessor`` with its image processor and tokenizer only.

        transformers 5 builds the video processor with torchvision, which this environment does
        not have; the image path (tiling, ``replace_image_token``, token counts) is the class's own.
        """

        # ProcessorMixin derives the sub-processors (image + tokenizer only) and the config keys it
        # passes on from this signature, so the parent's keyword arguments are spelled out.
        def __init__(self, image_processor=None, tokenizer=None, num_image_tokens=None,
                     vision_feature_select_strategy=None, chat_template=None, image_token="<image>",
                     video_token="<video>", vision_aspect_ratio="anyres_max_9", **kwargs):
            super().__init__(image_processor=image_processor, tokenizer=tokenizer, video_processor=None,
                             num_image_tokens=num_image_tokens, chat_template=chat_template,
                             vision_feature_select_strategy=vision_feature_select_strategy, image_token=image_token,
                             video_token=video_token, vision_aspect_ratio=vision_aspect_ratio, **kwargs)

    return OnevisionImagesProcessor


def load_processor(ckpt: str | Path):
    """transformers' processor of a llava-hf checkpoint directory."""
    from transformers import AutoProcessor
    from transformers.utils import is_torchvision_available

    if read_config(ckpt)["model_type"] == "llava_onevision" and not is_torchvision_available():
        return _onevision_images_processor_class().from_pretrained(str(ckpt))
    return AutoProcessor.from_pretrained(str(ckpt))


def load_model(ckpt: str | Path, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """transformers' own model (eager attention, so that the ONNX trace of its modules is plain)."""
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(str(ckpt), dtype=dtype, attn_implementation="eager")
    return model.eval()


@dataclass
class ReferenceFeatures:
    """Both sides of the vision boundary for one processor call."""

    tiles: torch.Tensor  # [n_tiles_total, T, D]: the projector's output, every image's base + grid tiles
    packed: list[torch.Tensor]  # per image [n_tokens_i, D]: what replaces that image's <image> tokens


def _image_kwargs(model: torch.nn.Module, inputs: dict[str, Any]) -> dict[str, Any]:
    kind = model.config.model_type
    kwargs = {"pixel_values": inputs["pixel_values"]}
    if kind in ("llava_next", "llava_onevision"):
        kwargs["image_sizes"] = inputs["image_sizes"]
    if kind == "llava_onevision" and "batch_num_images" in inputs:
        kwargs["batch_num_images"] = inputs["batch_num_images"]
    return kwargs


@torch.no_grad()
def reference_image_features(model: torch.nn.Module, inputs: dict[str, Any]) -> ReferenceFeatures:
    """transformers' ``get_image_features`` on processor outputs, with the per-tile projector output."""
    captured: list[torch.Tensor] = []
    hook = model.model.multi_modal_projector.register_forward_hook(lambda m, args, out: captured.append(out))
    try:
        out = model.model.get_image_features(**_image_kwargs(model, inputs))
    finally:
        hook.remove()
    packed = out.pooler_output if hasattr(out, "pooler_output") else out
    return ReferenceFeatures(tiles=captured[0], packed=list(packed))


def image_newline(model: torch.nn.Module) -> np.ndarray | None:
    """float32 ``[D]``, or None for LLaVA 1.5 (no newline)."""
    newline = getattr(model.model, "image_newline", None)
    return None if newline is None else newline.detach().float().numpy()


@torch.no_grad()
def reference_generate(model: torch.nn.Module, inputs: dict[str, Any], max_new_tokens: int) -> list[int]:
    """transformers' own greedy ``generate``; the new tokens only."""
    out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return out[0, inputs["input_ids"].shape[1]:].tolist()
