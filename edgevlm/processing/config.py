"""Processor, image-layout and chat-template settings: the data that makes one family differ from another.

These dataclasses are written into the bundle manifest (``to_dict``) and read back by the runtime
and the Android app (``from_dict``). The generic processing code reads only these fields; it has no
per-family branches. What each family should construct (fields left out keep their defaults;
``tests/test_processing_prompt.py`` and ``tests/test_processing_fixed.py`` hold these as example
configs and check them against the reference processors):

ProcessorConfig
  ==================  ===================  ===================  =========================  ==============
  field               MiniCPM-V 2.5        2.6 / 4.0 / 4.5      PaliGemma 1 / 2            Gemma 3
  ==================  ===================  ===================  =========================  ==============
  kind                "slice"              "slice"              "fixed"                    "fixed"
  image_size          448                  448                  224 / 448 / 896 (ckpt)     896
  patch_size          14                   14                   14                         14
  mean, std           0.5, 0.5             0.5, 0.5             0.5, 0.5                   0.5, 0.5
  resample            "bicubic"            "bicubic"            "bicubic"                  "bilinear"
  rescale_factor      1/255                1/255                1/255                      1/255
  max_slice_nums      9                    9 (per-call option)  -                          -
  scale_resolution    448                  448                  -                          -
  resize_align        None (=14)           None (=14)           -                          -
  ==================  ===================  ===================  =========================  ==============
  (MiniCPM-V 4.6 / 4.7: kind "slice_merge", resize_align 56 for "16x" and 28 for "4x", options
  {"patches_per_token": 16 | 4, "downsample_mode"}; tested against transformers in tests/test_minicpmv46_vision.py.)

ImageLayout
  ===================  ============================  ==============================  ===============  ===========================================
  field                MiniCPM-V 2.5                 2.6 / 4.0 / 4.5                 PaliGemma 1 / 2  Gemma 3
  ===================  ============================  ==============================  ===============  ===========================================
  feature_token        "<unk>"                       "<unk>"                         "<image>"        "<image_soft_token>"
  tokens_per_chunk     96                            64                              (size/14)**2     256 (mm_tokens_per_image)
  image_id_template    ""                            "<image_id>{index}</image_id>"  ""               ""
  overview_template    "<image>{features}</image>"   "<image>{features}</image>"     "{features}"     "\n\n<start_of_image>{features}<end_of_image>\n\n"
  slice_template       "<image>{features}</image>"   "<slice>{features}</slice>"     -                -
  slices_open / close  "<slice>" / "</slice>"        "" / ""                         -                -
  row_separator        "\n"                         "\n"                           -                -
  image_suffix         "\n"                         ""                              ""               ""
  marker               "(<image>./</image>)"         "(<image>./</image>)"           "<image>"        "<start_of_image>"
  auto_marker_joiner   "\n"                         "\n"                           ""               ""
  after_last_image     ""                            ""                              "<bos>"          ""
  attention            "causal"                      "causal"                        "prefix"         "image_blocks"
  ===================  ============================  ==============================  ===============  ===========================================

ChatTemplate
  - MiniCPM-V 2.5 (Llama-3): bos "<|begin_of_text|>"; system/user/assistant
    "<|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>"; generation_prompt
    "<|start_header_id|>assistant<|end_header_id|>\n\n"; strip_content "message"; stop ("<|eot_id|>",).
  - MiniCPM-V 2.6 (ChatML, the defaults here): default_system "You are a helpful assistant.";
    stop ("<|im_end|>", "<|endoftext|>"). 4.0 / 4.5: ChatML turns too (see the report about the
    default system message and 4.5's thinking prefix).
  - PaliGemma: no chat; user_template "{content}\n", generation_prompt "", eos "<eos>", stop ("<eos>",).
  - Gemma 3: bos "<bos>"; user "<start_of_turn>user\n{content}<end_of_turn>\n"; assistant
    "<start_of_turn>model\n{content}<end_of_turn>\n"; generation_prompt "<start_of_turn>model\n";
    system_mode "first_user" (joiner "\n\n"); strip_content "parts"; stop ("<end_of_turn>", "<eos>").
  - SmolVLM / Idefics3: bos "<|im_start|>" / "<|begin_of_text|>"; "{Role}:{content}<end_of_utterance>\n";
    generation_prompt "Assistant:"; text_first_prefix " "; stop ("<end_of_utterance>",).
  - InternVL (-hf): ChatML without a default system message.
  (Tiled families' processor and layout values: families/idefics3/spec.py, families/internvl/spec.py.)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from edgevlm.processing.images import DEFAULT_MAX_PIXELS


class _DictMixin:
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (tuples become lists)."""
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """Inverse of ``to_dict``; unknown keys are an error so manifest typos do not pass silently."""
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(data) - set(names)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown keys {sorted(unknown)}")
        kwargs = {}
        for key, value in data.items():
            default = names[key].default
            if isinstance(default, tuple) and isinstance(value, list):
                value = tuple(value)
            kwargs[key] = value
        return cls(**kwargs)


@dataclass(frozen=True)
class ProcessorConfig(_DictMixin):
    """How pixels become vision-tower input."""

    kind: str = "slice"  # an algorithm (runtime/images.py KINDS): "slice" LLaVA-UHD overview + slices; "fixed" one square resize
    image_size: int = 448  # "fixed": output side in pixels; "slice": informational (= scale_resolution)
    patch_size: int = 14
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    resample: str = "bicubic"  # Pillow filter name: "bicubic" | "bilinear" | "lanczos" | "nearest"
    rescale_factor: float = 1 / 255
    max_slice_nums: int = 9
    scale_resolution: int = 448
    never_split: bool = False
    resize_align: int | None = None  # sizes are multiples of this (None: patch_size); MiniCPM-V 4.6 uses 56 / 28
    max_pixels: int | None = DEFAULT_MAX_PIXELS  # decoded images larger than this are refused (a safety limit)
    options: dict = dataclasses.field(default_factory=dict)  # settings only this kind reads (e.g. pinpoints)

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or not self.kind:
            raise ValueError(f"ProcessorConfig.kind must name a processor kind, not {self.kind!r}")


@dataclass(frozen=True)
class ImageLayout(_DictMixin):
    """How one image becomes placeholder text in the prompt, and how the model attends over it.

    A chunk is one vision-tower input (the overview or one slice); each chunk becomes
    ``tokens_per_chunk`` copies of ``feature_token``, whose positions receive the image features.
    """

    feature_token: str = "<unk>"
    tokens_per_chunk: int = 64
    image_id_template: str = ""  # "{index}" is the image's 0-based index in the prompt; "" for none
    overview_template: str = "<image>{features}</image>"  # "{features}" = feature_token * tokens_per_chunk
    slice_template: str = "<slice>{features}</slice>"  # may name the tile's 1-based {row} and {col}
    slices_open: str = ""  # wraps all the slice rows (2.5: "<slice>")
    slices_close: str = ""
    row_separator: str = "\n"
    image_suffix: str = ""  # after the whole placeholder of each image (2.5: "\n")
    marker: str = "(<image>./</image>)"  # what users write in a prompt for "an image goes here"
    auto_marker_position: str = "start"  # where markers go in the first user turn when it has none
    auto_marker_joiner: str = "\n"  # joins the auto-inserted markers and the text
    after_last_image: str = ""  # text right after the last image placeholder (PaliGemma: "<bos>")
    image_prefix: str = ""  # before an image's chunks, after its id (InternVL: "<img>"); image_suffix closes it
    overview_last: bool = False  # the overview (global image) follows the tiles, in the text and the features
    attention: str = "causal"  # "causal" | "prefix" (whole prompt bidirectional) | "image_blocks"

    def __post_init__(self) -> None:
        if self.attention not in ("causal", "prefix", "image_blocks"):
            raise ValueError(f"ImageLayout.attention must be causal/prefix/image_blocks, not {self.attention!r}")
        if self.auto_marker_position not in ("start", "end"):
            raise ValueError("ImageLayout.auto_marker_position must be 'start' or 'end'")


@dataclass(frozen=True)
class ChatTemplate(_DictMixin):
    """Turn templates; ``{content}`` is the message text with image placeholders already expanded."""

    system_template: str = "<|im_start|>system\n{content}<|im_end|>\n"
    user_template: str = "<|im_start|>user\n{content}<|im_end|>\n"
    assistant_template: str = "<|im_start|>assistant\n{content}<|im_end|>\n"
    generation_prompt: str = "<|im_start|>assistant\n"
    default_system: str | None = None  # used when the conversation has no system turn
    system_mode: str = "turn"  # "turn": own turn; "first_user": prepended to the first user message
    system_joiner: str = "\n\n"  # system_mode "first_user": between the system text and the user text
    bos: str = ""  # text put once at the very start (e.g. "<|begin_of_text|>")
    strip_content: str = "none"  # Jinja "| trim": "none"; "message" (whole text, Llama-3); "parts" (each text part, Gemma 3)
    eos: str = ""  # ends a training/scoring suffix (PaliGemma: "<eos>")
    stop_strings: tuple[str, ...] = ("<|im_end|>",)
    # put before a message's text when the message does not start with an image marker (SmolVLM's
    # template writes "User:<image>..." but "User: text...")
    text_first_prefix: str = ""

    def __post_init__(self) -> None:
        if self.strip_content not in ("none", "message", "parts"):
            raise ValueError("ChatTemplate.strip_content must be 'none', 'message' or 'parts'")
        if self.system_mode not in ("turn", "first_user"):
            raise ValueError("ChatTemplate.system_mode must be 'turn' or 'first_user'")
