"""Prompt text and token layout: chat template, image placeholders, feature positions, attention blocks.

The order of operations is the reference one: the chat template is rendered over the *markers*
(``(<image>./</image>)``, ``<image>``, ``<start_of_image>``), and only then is each marker replaced
by its image's placeholder. This matters: templates that trim message text (Llama-3, Gemma 3)
trim the marker text, not the expanded placeholder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence, Union

import numpy as np

from edgevlm.errors import PromptError
from edgevlm.processing.config import ChatTemplate, ImageLayout
from edgevlm.processing.plan import ImagePlan
from edgevlm.processing.slicing import Grid

PlanOrGrid = Union[ImagePlan, Grid, None]  # a grid (or None) means every chunk gives layout.tokens_per_chunk


class _ImagePart:
    """Sentinel for "an image goes here" inside a message's content list."""

    def __repr__(self) -> str:
        return "IMAGE"


IMAGE = _ImagePart()

Content = Union[str, Sequence[Union[str, _ImagePart]]]
Message = dict  # {"role": "system" | "user" | "assistant", "content": Content}


@dataclass
class PromptText:
    """The rendered prompt; ``suffix`` (training / scoring only) is tokenised separately."""

    text: str
    suffix: str = ""
    n_images: int = 0


@dataclass
class PromptLayout:
    """Token ids plus where the image features go and how the model attends over them."""

    input_ids: np.ndarray  # int64 [T]
    image_positions: np.ndarray  # int64 [K]: feature rows in order (per image: overview, then slices row-major)
    token_type_ids: np.ndarray  # int64 [T]: HF meaning (PaliGemma 0=prefix 1=suffix; Gemma 3 1=image token)
    block_ids: np.ndarray  # int32 [T]: -1 causal; tokens sharing a block id >= 0 attend to each other both ways
    prefix_length: int  # tokens of the bidirectional prefix (PaliGemma); 0 when none
    chunks_per_image: list[int] = field(default_factory=list)


def chunk_count(grid: Grid | None) -> int:
    """Vision-tower chunks of one image: the overview plus the slices."""
    return 1 if grid is None else 1 + grid[0] * grid[1]


def as_plan(plan: PlanOrGrid, layout: ImageLayout) -> ImagePlan:
    return plan if isinstance(plan, ImagePlan) else ImagePlan.uniform(plan, layout.tokens_per_chunk)


def image_placeholder(layout: ImageLayout, plan: PlanOrGrid, index: int) -> str:
    """Placeholder text of one image (``index`` is its 0-based position in the conversation).

    The overview's run of feature tokens, and for a tiled image one run per tile: ``slice_template``
    may name the tile's 1-based ``{row}`` and ``{col}``; ``overview_last`` puts the overview after the
    tiles (the feature rows come in the same order)."""
    plan = as_plan(plan, layout)
    text = layout.image_id_template.format(index=index) if layout.image_id_template else ""
    overview = layout.overview_template.format(features=layout.feature_token * plan.overview_tokens)
    tiles = ""
    if plan.grid is not None:
        cols, rows = plan.grid
        lines = ["".join(layout.slice_template.format(features=layout.feature_token * plan.slice_tokens[r * cols + c],
                                                      row=r + 1, col=c + 1) for c in range(cols))
                 for r in range(rows)]
        tiles = layout.slices_open + layout.row_separator.join(lines) + layout.slices_close
    body = tiles + overview if layout.overview_last else overview + tiles
    return text + layout.image_prefix + body + layout.image_suffix


def content_text(content: Content, layout: ImageLayout, strip_parts: bool) -> str:
    """A message's text with one marker per image part (parts joined as the reference chat() does)."""
    if isinstance(content, str):
        return content
    clean = (lambda s: s.strip()) if strip_parts else (lambda s: s)
    parts = [layout.marker if part is IMAGE else clean(str(part)) for part in content]
    return layout.auto_marker_joiner.join(parts)


def message_turns(
    messages: str | Sequence[Message], n_images: int, layout: ImageLayout, template: ChatTemplate
) -> list[tuple[str, str]]:
    """(role, text) turns with exactly one marker per image (inserted when the text has none); a text
    that does not start with a marker gets ``template.text_first_prefix``."""
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    strip_parts = template.strip_content == "parts"
    turns = [(m["role"], content_text(m["content"], layout, strip_parts)) for m in messages]
    n_markers = sum(text.count(layout.marker) for _, text in turns)
    if n_markers == 0 and n_images > 0:
        # No marker anywhere: the images belong to the last user turn, where the reference puts them.
        last_user = max((i for i, (role, _) in enumerate(turns) if role == "user"), default=None)
        if last_user is None:
            raise PromptError("images were given but the prompt has no user message to put them in")
        role, text = turns[last_user]
        text = text.strip() if strip_parts else text  # the text becomes one part beside the images
        markers = [layout.marker] * n_images
        parts = markers + [text] if layout.auto_marker_position == "start" else [text] + markers
        turns[last_user] = (role, layout.auto_marker_joiner.join(parts))
        n_markers = n_images
    if n_markers != n_images:
        raise PromptError(
            f"the prompt has {n_markers} image marker(s) {layout.marker!r} but {n_images} image(s) were given; "
            "use one marker per image or none at all"
        )
    if template.text_first_prefix:
        turns = [(role, text if text.startswith(layout.marker) else template.text_first_prefix + text)
                 for role, text in turns]
    return turns


def render_chat(
    turns: list[tuple[str, str]], template: ChatTemplate, add_generation_prompt: bool = True, system: str | None = None
) -> str:
    """Chat text over (role, text) turns; the texts still hold image markers."""
    turns = list(turns)
    if system is not None:
        turns = [("system", template.text_first_prefix + system)] + [t for t in turns if t[0] != "system"]
    if not any(role == "system" for role, _ in turns) and template.default_system is not None:
        turns.insert(0, ("system", template.text_first_prefix + template.default_system))
    # "message": Jinja "| trim" on the whole message text (Llama-3); "parts": on each text part
    # of a content list (Gemma 3), done in message_turns; a plain-string message is one part.
    strip = template.strip_content != "none"
    clean = (lambda s: s.strip()) if strip else (lambda s: s)
    pieces = [template.bos]
    pending_system = None
    for role, text in turns:
        if role == "system":
            if template.system_mode == "first_user":
                pending_system = text  # Gemma 3 does not trim the system text
            else:
                pieces.append(template.system_template.format(content=clean(text)))
        elif role == "user":
            content = clean(text)
            if pending_system is not None:
                content, pending_system = pending_system + template.system_joiner + content, None
            pieces.append(template.user_template.format(content=content))
        elif role == "assistant":
            pieces.append(template.assistant_template.format(content=clean(text)))
        else:
            raise PromptError(f"unknown chat role {role!r}; use system, user or assistant")
    if add_generation_prompt:
        pieces.append(template.generation_prompt)
    return "".join(pieces)


def expand_images(text: str, grids: Sequence[PlanOrGrid], layout: ImageLayout, first_index: int = 0) -> str:
    """Replace the i-th marker by image i's placeholder; put ``after_last_image`` after the last one.

    ``first_index``: images already in the conversation (image ids continue across turns, as when the
    whole conversation is rendered at once)."""
    chunks = text.split(layout.marker)
    if len(chunks) - 1 != len(grids):
        raise PromptError(
            f"the prompt has {len(chunks) - 1} image marker(s) {layout.marker!r} but {len(grids)} image(s) were given"
        )
    out = [chunks[0]]
    for index, grid in enumerate(grids):
        out.append(image_placeholder(layout, grid, first_index + index))
        if index == len(grids) - 1:
            out.append(layout.after_last_image)
        out.append(chunks[index + 1])
    return "".join(out)


def build_prompt(
    messages: str | Sequence[Message],
    image_grids: Sequence[PlanOrGrid],
    layout: ImageLayout,
    template: ChatTemplate,
    *,
    system: str | None = None,
    add_generation_prompt: bool = True,
    suffix: str | None = None,
) -> PromptText:
    """Full prompt text for a user message (str) or chat turns, with one grid per image in order.

    ``image_grids[i]`` is the plan of the i-th image in the prompt (processing/plan.py), or its slice
    grid (``[cols, rows]`` or None) when every chunk gives ``layout.tokens_per_chunk`` rows. ``suffix`` (PaliGemma training/scoring) is returned
    separately, terminated by ``template.eos``, because it is tokenised on its own.
    """
    turns = message_turns(messages, len(image_grids), layout, template)
    chat = render_chat(turns, template, add_generation_prompt, system)
    text = expand_images(chat, image_grids, layout)
    suffix_text = "" if suffix is None else suffix + template.eos
    return PromptText(text, suffix_text, len(image_grids))


def layout_tokens(tokenizer, prompt: PromptText | str, layout: ImageLayout, chunks_per_image: Sequence[int] = (),
                  tokens_per_image: Sequence[int] = ()) -> PromptLayout:
    """Tokenise ``prompt`` and find the feature positions and attention blocks.

    ``tokenizer`` is an ``edgevlm.processing.tokenizer.Tokenizer`` (anything with ``encode`` and
    ``token_to_id``). When ``tokens_per_image`` (or ``chunks_per_image``, each chunk giving
    ``tokens_per_chunk`` rows) is given, the number of feature tokens must be their sum; otherwise a
    PromptError is raised (a user text
    that contains the feature token itself would silently shift every image feature).
    """
    if isinstance(prompt, str):
        prompt = PromptText(prompt)
    prefix_ids = tokenizer.encode(prompt.text)
    suffix_ids = tokenizer.encode(prompt.suffix) if prompt.suffix else np.zeros(0, dtype=np.int64)
    input_ids = np.concatenate([prefix_ids, suffix_ids]).astype(np.int64)  # [T]
    feature_id = tokenizer.token_to_id(layout.feature_token)
    if feature_id is None:
        raise PromptError(f"the tokenizer has no {layout.feature_token!r} token; the bundle's tokenizer does not match")
    is_feature = input_ids == feature_id  # [T]
    image_positions = np.flatnonzero(is_feature).astype(np.int64)  # [K]
    if tokens_per_image or chunks_per_image:
        expected = sum(tokens_per_image) if tokens_per_image else sum(chunks_per_image) * layout.tokens_per_chunk
        if len(image_positions) != expected:
            raise PromptError(
                f"the prompt has {len(image_positions)} {layout.feature_token!r} tokens where the images need "
                f"{expected}; remove that token from the text"
            )

    length, prefix_length = len(input_ids), 0
    token_type_ids = np.zeros(length, dtype=np.int64)  # [T]
    block_ids = np.full(length, -1, dtype=np.int32)  # [T]
    if layout.attention == "prefix":
        prefix_length = len(prefix_ids)
        token_type_ids[prefix_length:] = 1
        block_ids[:prefix_length] = 0
    elif layout.attention == "image_blocks":
        token_type_ids[is_feature] = 1
        # one block per contiguous run of feature tokens (one image)
        run_starts = is_feature & ~np.concatenate([[False], is_feature[:-1]])  # [T] first token of each run
        run_index = np.cumsum(run_starts) - 1  # [T] index of the run a token is in (or follows)
        block_ids[is_feature] = run_index[is_feature]
    return PromptLayout(input_ids, image_positions, token_type_ids, block_ids, prefix_length, list(chunks_per_image))
