"""The PyTorch reference of MiniCPM-V 4.6 / 4.7 seen as the parts a bundle exports.

Everything here is transformers' own model and processor code (``models/minicpmv4_6``,
``models/minicpmv4_7``, ``models/qwen3_5``): no part of the model is re-implemented. The reference
gives image features for preprocessed slices in either downsample mode, token embeddings, the
text model over ``inputs_embeds`` (with transformers' own hybrid cache), prompt positions (4.7's
canvas M-RoPE) and the processor's outputs, against which the exported parts are checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...errors import CheckpointError
from . import DOWNSAMPLE_MODES, MODEL_TYPES

_TOKEN_ATTRIBUTES = ("image_token", "video_token", "image_token_id", "video_token_id", "image_start_token",
                     "image_end_token", "slice_start_token", "slice_end_token", "image_id_start_token",
                     "image_id_end_token")


class MiniCPMV46Reference(nn.Module):
    """transformers' ``MiniCPMV4_{6,7}ForConditionalGeneration`` split into vision, embedding and text parts."""

    def __init__(self, hf_model: nn.Module):
        super().__init__()
        self.hf = hf_model
        config = hf_model.config
        self.version = MODEL_TYPES[config.model_type]
        self.downsample_mode = config.downsample_mode
        self.text_model = hf_model.model.language_model  # Qwen3_5TextModel
        self.lm_head = hf_model.lm_head
        self.text_config = config.text_config
        self.image_token_id = config.image_token_id

    def image_features(self, pixel_values: torch.Tensor, target_sizes: torch.Tensor,
                       downsample_mode: str | None = None) -> list[torch.Tensor]:
        """Packed slices [1, 3, p, sum(h*w)*p] and their (h, w) patch grids [n, 2] -> one [h*w/ratio, D]
        feature block per slice (ratio 16 for "16x", 4 for "4x"), by transformers' ``get_image_features``."""
        mode = downsample_mode or self.downsample_mode
        if mode not in DOWNSAMPLE_MODES:
            raise ValueError(f"downsample_mode {mode!r} is not one of {sorted(DOWNSAMPLE_MODES)}")
        with torch.no_grad():
            out = self.hf.model.get_image_features(pixel_values, target_sizes.to(torch.int32), downsample_mode=mode)
        return list(out.pooler_output)

    def embed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.text_model.embed_tokens(input_ids)  # [B, T, D]; Qwen3.5 applies no embedding scale

    def text_forward(self, inputs_embeds: torch.Tensor, position_ids: torch.Tensor | None = None,
                     cache: Any = None) -> tuple[torch.Tensor, Any]:
        """The text model + lm_head over [1, T, D] embeddings: (logits [1, T, vocab], updated cache).

        ``position_ids``: None (positions follow the cache), [1, T] (1-D) or [3, 1, T] (M-RoPE t/h/w).
        ``cache``: None to start a new sequence (one is created), or the cache a previous call returned.
        """
        with torch.no_grad():
            out = self.text_model(inputs_embeds=inputs_embeds, position_ids=position_ids, cache=cache,
                                  use_cache=True)
            return self.lm_head(out.last_hidden_state), out.cache

    def prompt_positions(self, processor_outputs: dict[str, torch.Tensor],
                         downsample_mode: str | None = None) -> tuple[torch.Tensor, int]:
        """Positions of a prompt's tokens for the text model and the next free position.

        4.6: 1-D positions [1, T] (0..T-1; transformers expands them to the three rotary streams).
        4.7: canvas M-RoPE [3, 1, T] from transformers' own ``get_rope_index``; generation continues at
        max + 1 on all three streams (``rope_deltas``).
        """
        ids = processor_outputs["input_ids"]
        if self.version == "4.6":
            return torch.arange(ids.shape[1])[None], ids.shape[1]
        positions, deltas = self.hf.model.get_rope_index(
            ids, mm_token_type_ids=processor_outputs.get("mm_token_type_ids"),
            target_sizes=processor_outputs.get("target_sizes"),
            downsample_mode=downsample_mode or self.downsample_mode)
        return positions, int(ids.shape[1] + deltas[0, 0])

    def reference_logits(self, **processor_outputs: torch.Tensor) -> torch.Tensor:
        """transformers' own forward on the processor's outputs: [1, T, vocab]."""
        with torch.no_grad():
            return self.hf(**processor_outputs).logits

    def reference_generate(self, max_new_tokens: int, **processor_outputs: torch.Tensor) -> list[int]:
        """transformers' own greedy ``generate``; only the new tokens."""
        prompt_len = processor_outputs["input_ids"].shape[1]
        with torch.no_grad():
            out = self.hf.generate(**processor_outputs, max_new_tokens=max_new_tokens, do_sample=False)
        return out[0, prompt_len:].tolist()


def load_reference(ckpt: str | Path, dtype: torch.dtype = torch.float32) -> MiniCPMV46Reference:
    """transformers' own model for the checkpoint (eager attention: the parity reference)."""
    from transformers import AutoModelForImageTextToText

    from ..base import read_config

    model_type = read_config(ckpt).get("model_type")
    if model_type not in MODEL_TYPES:
        raise CheckpointError(f"{ckpt}: model_type {model_type!r} is not MiniCPM-V 4.6 / 4.7 "
                              f"({', '.join(MODEL_TYPES)}).")
    model = AutoModelForImageTextToText.from_pretrained(str(ckpt), dtype=dtype, attn_implementation="eager")
    return MiniCPMV46Reference(model.eval())


def load_processor(ckpt: str | Path) -> Any:
    """transformers' own MiniCPM-V 4.6 / 4.7 processor for the checkpoint.

    ``AutoProcessor`` needs torchvision here only for the video processor, which the MiniCPM-V
    processor's ``__init__`` reads; torchvision has no CPU wheel for this torch. Without it, the same
    processor class is assembled from the checkpoint's own tokenizer, image processor and chat
    template (its ``__init__`` minus the video part), so images and text go through transformers' code.
    """
    import transformers
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

    try:
        return AutoProcessor.from_pretrained(str(ckpt))
    except ImportError:
        pass
    from ..base import read_config

    version = MODEL_TYPES[read_config(ckpt)["model_type"]]
    processor_class = getattr(transformers, f"MiniCPMV{version.replace('.', '_')}Processor")
    processor = processor_class.__new__(processor_class)
    processor.tokenizer = AutoTokenizer.from_pretrained(str(ckpt))
    processor.image_processor = AutoImageProcessor.from_pretrained(str(ckpt))
    template = Path(ckpt) / "chat_template.jinja"
    processor.chat_template = template.read_text(encoding="utf-8") if template.is_file() else None
    processor.slice_mode = processor.image_processor.slice_mode
    processor.default_use_image_id = processor.image_processor.use_image_id
    processor.image_token_divisor = DOWNSAMPLE_MODES[processor.image_processor.downsample_mode]
    for name in _TOKEN_ATTRIBUTES:
        setattr(processor, name, getattr(processor.tokenizer, name))
    return processor


def processor_outputs(processor: Any, prompt: str, images: list[Any], downsample_mode: str | None = None,
                      enable_thinking: bool = False) -> dict[str, torch.Tensor]:
    """One user turn with ``images`` then ``prompt`` through the processor's chat template and ``__call__``."""
    content = [{"type": "image"} for _ in images] + [{"type": "text", "text": prompt}]
    text = processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                         tokenize=False, enable_thinking=enable_thinking)
    kwargs = {"downsample_mode": downsample_mode} if downsample_mode else {}
    return dict(processor(text=[text], images=images or None, return_tensors="pt", **kwargs))
