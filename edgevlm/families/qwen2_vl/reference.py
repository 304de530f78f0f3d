"""The PyTorch reference of Qwen2-VL / Qwen2.5-VL seen as the parts a bundle exports.

transformers' ``Qwen2VLForConditionalGeneration`` / ``Qwen2_5_VLForConditionalGeneration`` built
from config.json and the published safetensors (``visual.*``, ``model.*``, ``lm_head.*``) by our own
name mapping, so a test can hold it against transformers' ``from_pretrained``. Parts:

- ``image_features(pixel_values, image_grid_thw)``: transformers' own vision tower + merger,
  ``[sum of tokens per image, hidden]`` in prompt order;
- ``embed_tokens``: the token embedding (no scale);
- ``language_model`` (``MropeCausalLM``): the Qwen2 text model + lm_head over ``inputs_embeds`` with
  explicit M-RoPE ``position_ids`` [3, B, T] (made by ``edgevlm.processing.mrope``).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...processing.mrope import mrope_positions, text_positions
from ..common.hf_vlm import HFVisionLanguageModel
from ..common.reference import load_safetensors_dir, load_weights, read_config

# published checkpoint name -> transformers 5 module name (first match wins)
_HUB_TO_MODULE = (("visual.", "model.visual."), ("model.", "model.language_model."))


def hub_to_module(name: str) -> str:
    for hub, module in _HUB_TO_MODULE:
        if name.startswith(hub):
            return module + name[len(hub):]
    return name  # lm_head.weight


def module_to_hub(name: str) -> str:
    """The inverse of ``hub_to_module`` (writes tiny checkpoints in the published layout)."""
    for hub, module in _HUB_TO_MODULE:
        if name.startswith(module):
            return hub + name[len(module):]
    return name


def hf_model(config: dict[str, Any], attn_implementation: str = "eager") -> torch.nn.Module:
    """transformers' model for a config.json dict (random weights until loaded)."""
    from transformers import (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLConfig,
                              Qwen2VLForConditionalGeneration)

    config_class, model_class = ((Qwen2VLConfig, Qwen2VLForConditionalGeneration) if config["model_type"] == "qwen2_vl"
                                 else (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration))
    fields = copy.deepcopy({k: v for k, v in config.items()  # the config class edits nested dicts in place
                            if k not in ("architectures", "model_type", "transformers_version")})
    hf_config = config_class(**fields)
    for cfg in (hf_config, hf_config.text_config, hf_config.vision_config):
        cfg._attn_implementation = attn_implementation
    return model_class(hf_config)


def hf_processor(ckpt: str | Path) -> Any:
    """transformers' own ``Qwen2VLProcessor`` / ``Qwen2_5_VLProcessor`` of a checkpoint, without torchvision.

    The processor insists on a video processor, and transformers 5 builds every video processor on
    torchvision, which edgevlm does not install (installing it would also switch every image
    processor to the torchvision backend, whose resize differs from Pillow's). Images never use it,
    so the video slot gets an empty ``VideoProcessorMixin`` that refuses to be called; the image
    processor, tokenizer, chat template and placeholder expansion are transformers' own."""
    from transformers import AutoProcessor, processing_utils
    from transformers.utils import is_torchvision_available
    from transformers.video_processing_utils import VideoProcessorMixin

    if not is_torchvision_available():  # the processor's class check looks the base class up by name
        processing_utils.transformers_module.VideoProcessorMixin = VideoProcessorMixin

    class NoVideo(VideoProcessorMixin):
        merge_size, temporal_patch_size = 2, 2

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("videos are not supported by edgevlm's Qwen2-VL bundles")

    return AutoProcessor.from_pretrained(str(ckpt), video_processor=NoVideo())


class MropeCausalLM(torch.nn.Module):
    """The text half over ``inputs_embeds`` with explicit M-RoPE positions (shares the VLM's modules)."""

    def __init__(self, text_model: torch.nn.Module, lm_head: torch.nn.Module, text_config: Any):
        super().__init__()
        self.model, self.lm_head, self.config = text_model, lm_head, text_config

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.model.embed_tokens

    def forward(self, inputs_embeds: torch.Tensor, position_ids: torch.Tensor | None = None, cache=None,
                use_cache: bool = False, attention_mask=None):
        """``inputs_embeds`` [B, T, D], ``position_ids`` int64 [3, B, T] (None: text positions from the cache
        length, the same in all three streams) -> output with .logits [B, T, V], .cache."""
        out = self.model(inputs_embeds=inputs_embeds, position_ids=position_ids, attention_mask=attention_mask,
                         cache=cache, use_cache=use_cache)
        out.logits = self.lm_head(out.last_hidden_state)
        return out


class Qwen2VLReference(HFVisionLanguageModel):
    """transformers' Qwen2(.5)-VL through the ReferenceVLM parts, with M-RoPE positions as data."""

    position_streams = 3  # temporal, height, width (processing/mrope.py)
    text_streams_equal = True  # text tokens: one id in all three streams, so llama.cpp can take them

    def __init__(self, hf: torch.nn.Module, family: str):
        super().__init__(hf, family, "qwen2vl")  # llama.cpp's text arch for both versions
        cfg = hf.config
        self.language_model = MropeCausalLM(hf.model.language_model, hf.lm_head, cfg.text_config)
        self.merge_size = cfg.vision_config.spatial_merge_size
        # the sections the text model's rotary module uses (transformers' default when the config has none)
        self.text.extra["mrope_section"] = list(hf.model.language_model.rotary_emb.mrope_section)
        # config.json keeps the tie at the top level (2B / 3B tie): llama.cpp then reuses token_embd
        self.text.extra["tie_word_embeddings"] = bool(cfg.tie_word_embeddings)

    def image_features(self, pixel_values: torch.Tensor, image_grid_thw: torch.Tensor) -> torch.Tensor:
        """[n_patches, C*T*p*p] + int64 [n_images, 3] -> [1, n_image_tokens, hidden]: transformers' own
        vision tower + merger, every image's rows in order as one chunk (images differ in length)."""
        out = self.hf.model.get_image_features(pixel_values, torch.as_tensor(image_grid_thw))
        return torch.cat(list(out.pooler_output), dim=0)[None]

    def vision_graph(self):
        from .vision import vision_graph

        return vision_graph(self)

    def hf_processor(self, ckpt: str | Path) -> Any:
        return hf_processor(ckpt)

    def embed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.hf.model.language_model.embed_tokens(input_ids)

    def positions(self, input_ids, image_grid_thw, start: int = 0):
        """M-RoPE positions of one prompt piece (numpy, edgevlm.processing.mrope)."""
        grids = [] if image_grid_thw is None else np.asarray(image_grid_thw).reshape(-1, 3)
        return mrope_positions(np.asarray(input_ids).reshape(-1), self.image_token_id, grids, self.merge_size, start)

    @torch.no_grad()
    def logits(self, input_ids: torch.Tensor, features: torch.Tensor | None = None,
               position_ids: np.ndarray | None = None, image_grid_thw=None) -> torch.Tensor:
        """[1, T, vocab] for one sequence; ``position_ids`` [3, T] (computed from the grids when None)."""
        if position_ids is None:
            position_ids = self.positions(input_ids, image_grid_thw).position_ids
        embeds = self.merge_embeddings(input_ids, features)
        pos = torch.from_numpy(np.asarray(position_ids, dtype=np.int64))[:, None, :]  # [3, 1, T]
        return self.language_model(inputs_embeds=embeds, position_ids=pos).logits

    @torch.no_grad()
    def greedy(self, input_ids: torch.Tensor, features: torch.Tensor | None, max_new_tokens: int,
               eos_ids: tuple[int, ...] = (), image_grid_thw=None) -> list[int]:
        """Greedy tokens with M-RoPE: prompt positions from the grids, then text positions onward."""
        prompt = self.positions(input_ids, image_grid_thw)
        embeds = self.merge_embeddings(input_ids, features)
        pos = torch.from_numpy(prompt.position_ids)[:, None, :]
        out = self.language_model(inputs_embeds=embeds, position_ids=pos, use_cache=True)
        cache, tokens, position = out.cache, [], prompt.next_position
        next_id = int(out.logits[0, -1].argmax())
        for _ in range(max_new_tokens):
            tokens.append(next_id)
            if next_id in eos_ids:
                break
            step = self.embed_tokens(torch.tensor([[next_id]]))
            pos = torch.from_numpy(text_positions(1, position))[:, None, :]  # [3, 1, 1]
            out = self.language_model(inputs_embeds=step, position_ids=pos, cache=cache, use_cache=True)
            cache, next_id, position = out.cache, int(out.logits[0, -1].argmax()), position + 1
        return tokens


def load_reference(ckpt: str | Path, dtype: torch.dtype | None = None) -> Qwen2VLReference:
    """The reference of a Qwen2-VL / Qwen2.5-VL checkpoint directory (published layout)."""
    from .spec import NAME, processor_settings

    config = read_config(ckpt)
    model = hf_model(config)
    tensors = {hub_to_module(k): v for k, v in load_safetensors_dir(ckpt).items()}
    load_weights(model, tensors, str(ckpt))
    ref = Qwen2VLReference(model.to(dtype or torch.float32).eval(), NAME)
    ref.processor_settings = processor_settings(Path(ckpt), config)  # mean / std for the mmproj
    return ref

