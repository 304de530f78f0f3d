"""Prompts whose images take a number of feature tokens that the image plan decides, per image.

``prompt.py`` sizes an image's placeholder as ``tokens_per_chunk`` x its chunks (overview + slice
grid): right when every chunk yields the same fixed count (MiniCPM-V's resampler, SigLIP). LLaVA-NeXT
and LLaVA-OneVision give each image a count that only its plan knows (the base tile, then the
unpadded - and for OneVision possibly pooled - rows of grid features, each ending in a newline
feature: ``anyres.AnyresPlan.n_tokens``). This module is the same pipeline (chat template over the
markers, then each marker replaced) with the count given per image; everything else (turns,
templates, auto-inserted markers, attention blocks) is prompt.py's own code.

    text = build_prompt_counted(messages, [plan.n_tokens for plan in plans], layout, template)
    ids = layout_tokens_counted(tokenizer, text, layout, [plan.n_tokens for plan in plans])
"""

from __future__ import annotations

from typing import Sequence

from edgevlm.errors import PromptError
from edgevlm.processing.config import ChatTemplate, ImageLayout
from edgevlm.processing.prompt import Message, PromptLayout, PromptText, layout_tokens, message_turns, render_chat


def counted_placeholder(layout: ImageLayout, n_tokens: int, index: int) -> str:
    """Placeholder text of image ``index``: its id, the overview template around ``n_tokens`` feature tokens."""
    text = layout.image_id_template.format(index=index) if layout.image_id_template else ""
    return text + layout.overview_template.format(features=layout.feature_token * n_tokens) + layout.image_suffix


def expand_images_counted(text: str, tokens_per_image: Sequence[int], layout: ImageLayout) -> str:
    """Replace the i-th marker by image i's placeholder; ``after_last_image`` follows the last one."""
    chunks = text.split(layout.marker)
    if len(chunks) - 1 != len(tokens_per_image):
        raise PromptError(f"the prompt has {len(chunks) - 1} image marker(s) {layout.marker!r} but "
                          f"{len(tokens_per_image)} image(s) were given")
    out = [chunks[0]]
    for index, n_tokens in enumerate(tokens_per_image):
        out.append(counted_placeholder(layout, n_tokens, index))
        if index == len(tokens_per_image) - 1:
            out.append(layout.after_last_image)
        out.append(chunks[index + 1])
    return "".join(out)


def build_prompt_counted(
    messages: str | Sequence[Message],
    tokens_per_image: Sequence[int],
    layout: ImageLayout,
    template: ChatTemplate,
    *,
    system: str | None = None,
    add_generation_prompt: bool = True,
    suffix: str | None = None,
) -> PromptText:
    """``prompt.build_prompt`` with image i taking ``tokens_per_image[i]`` feature tokens."""
    turns = message_turns(messages, len(tokens_per_image), layout, template)
    chat = render_chat(turns, template, add_generation_prompt, system)
    text = expand_images_counted(chat, tokens_per_image, layout)
    suffix_text = "" if suffix is None else suffix + template.eos
    return PromptText(text, suffix_text, len(tokens_per_image))


def layout_tokens_counted(tokenizer, prompt: PromptText | str, layout: ImageLayout,
                          tokens_per_image: Sequence[int]) -> PromptLayout:
    """``prompt.layout_tokens`` checked against the per-image counts (a feature token typed in the
    user's text would otherwise shift every image's features by one)."""
    result = layout_tokens(tokenizer, prompt, layout)
    expected = sum(tokens_per_image)
    if len(result.image_positions) != expected:
        raise PromptError(f"the prompt has {len(result.image_positions)} {layout.feature_token!r} tokens where the "
                          f"images need {expected}; remove that token from the text")
    return result
