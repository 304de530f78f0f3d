"""Image processing and prompt layout, in numpy + Pillow + tokenizers only (no torch, no transformers).

Modules, one purpose each:

* ``images``     ``load_image``: decode, EXIF orientation, mode conversions, one clear ``ImageError``;
* ``slicing``    MiniCPM-V (LLaVA-UHD) slice planning and ``slice_image``, exact to the reference;
* ``normalize``  rescale + normalise through a per-byte lookup table (bit-identical, fast);
* ``patchify``   ``reshape_by_patch`` into ``[3, p, L]`` and padding chunks into a batch;
* ``preprocess`` ``preprocess_slices`` (MiniCPM-V) and ``preprocess_fixed`` (PaliGemma, Gemma 3);
* ``config``     ``ProcessorConfig``, ``ImageLayout``, ``ChatTemplate``: the per-family data;
* ``prompt``     chat template, placeholder expansion, ``layout_tokens`` (feature positions, masks);
* ``tokenizer``  ``Tokenizer`` over tokenizer.json and the incremental ``StreamDecoder``.
"""

from edgevlm.processing.config import ChatTemplate, ImageLayout, ProcessorConfig
from edgevlm.processing.images import DEFAULT_MAX_PIXELS, load_image
from edgevlm.processing.preprocess import SlicedImage, preprocess_fixed, preprocess_slices
from edgevlm.processing.prompt import IMAGE, PromptLayout, PromptText, build_prompt, layout_tokens
from edgevlm.processing.slicing import plan_slices, slice_image
from edgevlm.processing.tokenizer import StreamDecoder, Tokenizer

__all__ = [
    "ChatTemplate",
    "DEFAULT_MAX_PIXELS",
    "IMAGE",
    "ImageLayout",
    "ProcessorConfig",
    "PromptLayout",
    "PromptText",
    "SlicedImage",
    "StreamDecoder",
    "Tokenizer",
    "build_prompt",
    "layout_tokens",
    "load_image",
    "plan_slices",
    "preprocess_fixed",
    "preprocess_slices",
    "slice_image",
]
