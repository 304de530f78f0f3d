"""The PyTorch reference of LLaVA 1.5 / NeXT / OneVision: transformers' own model, seen as parts.

* ``load_reference``: ``AutoModelForImageTextToText`` (eager attention, so that traces are plain)
  wrapped as a ``ReferenceVLM`` (families/common/hf_vlm.py): the text model for the decoder
  exporters, ``image_features`` = the per-tile vision part (vision.py), ``vision_graph``;
* ``hf_processor``: transformers' processor (OneVision's without its video half when torchvision
  is missing: ``onevision_processor_class``);
* ``reference_image_features``: one call of transformers' ``get_image_features`` that returns both
  sides of the vision-part / numpy boundary (see vision.py): the projector's output per tile,
  captured with a forward hook, and the packed features per image (after unpadding, OneVision's
  pooling and the newline rows) that the language model receives.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ...text_archs import arch_of_model_type
from ..common.hf_vlm import HFVisionLanguageModel
from .spec import NAME
from .vision import LlavaVision, vision_graph


def onevision_processor_class():
    """transformers' ``LlavaOnevisionProcessor`` with its image processor and tokenizer only.

    transformers 5 builds OneVision's video processor with torchvision, which this environment does
    not have (and must not: installing it switches every image processor to the torch backend). The
    image path (tiling, ``replace_image_token``, token counts, ``batch_num_images``) is the class's own.
    """
    from transformers import LlavaOnevisionProcessor

    class OnevisionImagesProcessor(LlavaOnevisionProcessor):
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

    from ..common.reference import read_config

    if read_config(ckpt)["model_type"] == "llava_onevision" and not is_torchvision_available():
        return onevision_processor_class().from_pretrained(str(ckpt))
    return AutoProcessor.from_pretrained(str(ckpt))


class LlavaReference(HFVisionLanguageModel):
    """transformers' Llava / LlavaNext / LlavaOnevision ForConditionalGeneration as a ReferenceVLM."""

    def __init__(self, hf_model: torch.nn.Module, image_processor: Any):
        super().__init__(hf_model, NAME, arch_of_model_type(hf_model.config.text_config.model_type))
        self.vision = LlavaVision(hf_model)
        self.image_processor = image_processor  # the checkpoint's ProcessorConfig (spec.py), for the mmproj

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Tiles [B, 3, S, S] -> the projector's features per tile [B, T, D] (no packing)."""
        return self.vision(pixel_values)

    def vision_graph(self):
        return vision_graph(self.hf)

    def hf_processor(self, ckpt: str | Path) -> Any:
        return load_processor(ckpt)


def load_reference(ckpt: str | Path, dtype: torch.dtype | None = None) -> LlavaReference:
    from transformers import AutoModelForImageTextToText

    from ...errors import CheckpointError
    from ..common.reference import read_config
    from .spec import bundle_spec

    processor = bundle_spec(Path(ckpt), read_config(ckpt)).processor
    try:
        model = AutoModelForImageTextToText.from_pretrained(str(ckpt), dtype=dtype or torch.float32,
                                                            attn_implementation="eager")
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{ckpt}: transformers cannot load this LLaVA checkpoint ({exc}). Re-copy it.") from None
    return LlavaReference(model.eval(), processor)


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
