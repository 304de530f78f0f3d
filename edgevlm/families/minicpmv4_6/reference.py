"""The MiniCPM-V 4.6 / 4.7 reference: transformers' own ``MiniCPMV4_{6,7}ForConditionalGeneration``.

Nothing of the model is re-implemented: image features come from transformers' ``get_image_features``
(chunks packed as its processor packs them), the text model is its Qwen3.5 hybrid (Gated DeltaNet +
gated full attention) with its own cache, and the parity references are its own forward and
``generate`` on its own processor's output. ``vision.py`` re-wires the same modules into the graph
the exporters write. 4.7 numbers positions with canvas M-RoPE (three streams, ``position_streams``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..common.hf_vlm import CausalLMView, TransformersParity
from ..common.reference import ReferenceVLM, TextSpec, read_config
from .spec import DOWNSAMPLE_MODES, NAME, check_layer_types, downsample_mode

_TOKEN_ATTRIBUTES = ("image_token", "video_token", "image_token_id", "video_token_id", "image_start_token",
                     "image_end_token", "slice_start_token", "slice_end_token", "image_id_start_token",
                     "image_id_end_token")


class HybridLMView(CausalLMView):
    """The Qwen3.5 text model + tied head over inputs_embeds, with transformers' own hybrid cache."""

    def forward(self, inputs_embeds: torch.Tensor, attention_mask=None, position_ids=None, cache=None,
                use_cache: bool = False, **kwargs):
        out = self.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
                         cache=cache, use_cache=use_cache)
        out.logits = self.lm_head(out.last_hidden_state)
        return out


class MiniCPMV46(TransformersParity, ReferenceVLM):
    family = NAME

    def __init__(self, hf_model: nn.Module, ckpt: Path, processor_config: dict[str, Any]):
        super().__init__()
        self.hf = hf_model
        config = hf_model.config
        self.checkpoint = Path(ckpt)
        self.version = "4.7" if config.model_type == "minicpmv4_7" else "4.6"
        self.downsample_mode = downsample_mode(config.to_dict())
        self.position_streams = 3 if self.version == "4.7" else 1
        self.language_model = HybridLMView(hf_model.model.language_model, hf_model.lm_head, config.text_config)
        self.text = TextSpec.from_config("qwen35", config.text_config)
        rope = config.text_config.rope_parameters
        self.text.extra.update(rope_theta=float(rope["rope_theta"]),
                               partial_rotary_factor=float(rope.get("partial_rotary_factor", 1.0)),
                               full_attention_interval=config.text_config.full_attention_interval)
        self.image_token_id = int(config.image_token_id)
        vision = config.vision_config
        self.patch_size = int(vision.patch_size)
        self.processor_config = processor_config  # preprocessor_config.json
        self.scale_resolution = int(processor_config.get("scale_resolution", config.image_size))

    def vision_params(self) -> dict[str, Any]:
        """Parameters of the derived inputs (manifest ``vision.params``)."""
        return {"position_table_side": int(self.hf.config.vision_config.image_size // self.patch_size)}

    def vision_graph(self):
        from .vision import vision_graph

        return vision_graph(self)

    def embed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.hf.model.language_model.embed_tokens(input_ids)  # Qwen3.5 applies no embedding scale

    @torch.no_grad()
    def image_features(self, pixel_values: torch.Tensor, patch_mask: torch.Tensor | None = None,
                       tgt_sizes: torch.Tensor | None = None) -> torch.Tensor:
        """Chunks [n, 3, p, L_max] (zero-padded) and their (h, w) patch grids -> features [n, rows_max, D]
        by transformers' ``get_image_features``, each chunk's h*w/16 (or /4) rows first, zero-padded."""
        sizes = np.asarray(tgt_sizes, np.int64)
        patch = pixel_values.shape[2]
        packed = torch.cat([pixel_values[i, :, :, : int(h * w) * patch] for i, (h, w) in enumerate(sizes)], -1)
        out = self.hf.model.get_image_features(packed[None], torch.from_numpy(sizes).to(torch.int32),
                                               downsample_mode=self.downsample_mode).pooler_output
        rows = max(o.shape[0] for o in out)
        padded = torch.zeros(len(out), rows, out[0].shape[-1])
        for i, o in enumerate(out):
            padded[i, : o.shape[0]] = o
        return padded

    @torch.no_grad()
    def logits(self, input_ids: torch.Tensor, features: torch.Tensor | None = None, attention_mask=None,
               position_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The text model on merged embeddings: [B, T, vocab]. 4.7 prompts with images need their canvas
        ``position_ids`` [3, 1, T] (use ``reference_logits`` on the processor's output instead)."""
        embeds = self.merge_embeddings(input_ids, features)
        return self.language_model(inputs_embeds=embeds, position_ids=position_ids).logits

    @torch.no_grad()
    def greedy(self, input_ids: torch.Tensor, features: torch.Tensor | None, max_new_tokens: int,
               eos_ids: tuple[int, ...] = ()) -> list[int]:
        """Greedy tokens with transformers' hybrid cache (1-D positions: 4.6, or text-only 4.7 prompts)."""
        out = self.language_model(inputs_embeds=self.merge_embeddings(input_ids, features), use_cache=True)
        cache, tokens = out.cache, []
        next_id = int(out.logits[0, -1].argmax())
        for _ in range(max_new_tokens):
            tokens.append(next_id)
            if next_id in eos_ids:
                break
            out = self.language_model(inputs_embeds=self.embed_tokens(torch.tensor([[next_id]])), cache=cache,
                                      use_cache=True)
            cache, next_id = out.cache, int(out.logits[0, -1].argmax())
        return tokens

    # -- transformers' own processor, forward and generate (the parity references) -----------------
    def processor(self) -> Any:
        if not hasattr(self, "_processor"):
            self._processor = load_processor(self.checkpoint)
        return self._processor

    def processor_inputs(self, image: Any, prompt: str) -> dict[str, torch.Tensor]:
        """transformers' processor on one user turn holding ``image`` then ``prompt`` (the export parity check)."""
        return processor_outputs(self.processor(), prompt, [image] if image is not None else [])


def load_reference(ckpt: str | Path, dtype: torch.dtype | None = None) -> MiniCPMV46:
    """transformers' own model for the checkpoint (eager attention: the parity reference)."""
    import json

    from transformers import AutoModelForImageTextToText

    check_layer_types(read_config(ckpt))  # clear errors before transformers reads the config
    pre = Path(ckpt) / "preprocessor_config.json"
    processor_config = json.loads(pre.read_text(encoding="utf-8")) if pre.is_file() else {}
    model = AutoModelForImageTextToText.from_pretrained(str(ckpt), dtype=dtype or torch.float32,
                                                        attn_implementation="eager")
    return MiniCPMV46(model.eval(), Path(ckpt), processor_config)


def load_processor(ckpt: str | Path) -> Any:
    """transformers' own MiniCPM-V 4.6 / 4.7 processor for the checkpoint.

    ``AutoProcessor`` needs torchvision only for the video processor, which the MiniCPM-V processor's
    ``__init__`` reads; torchvision has no CPU wheel for this torch here. Without it, the same processor
    class is assembled from the checkpoint's own tokenizer, image processor and chat template (its
    ``__init__`` minus the video part), so images and text still go through transformers' code.
    """
    import transformers
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

    try:
        return AutoProcessor.from_pretrained(str(ckpt))
    except ImportError:
        pass
    model_type = read_config(ckpt)["model_type"]
    processor_class = getattr(transformers, f"MiniCPMV{model_type[len('minicpmv'):]}Processor")
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
