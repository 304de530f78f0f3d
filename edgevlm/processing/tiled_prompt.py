"""Prompt placeholders for tiled images (SmolVLM / Idefics3, InternVL): a backwards-compatible extension.

``prompt.image_placeholder`` lays an image out as overview first, then slice rows joined by a
separator, every slice spelled the same. The tiled families need three things it cannot say:

* the overview (global image / thumbnail) **after** the tiles, in the text and in the feature order;
* per-tile text naming the tile's position: ``{row}`` / ``{col}`` (1-based) in ``slice_template``
  (Idefics3: ``<fake_token_around_image><row_1_col_2>``);
* text around the whole image, before the first chunk (InternVL: ``<img>`` ... ``</img>``), and a
  different chat prefix when a message starts with text rather than an image (SmolVLM's template
  writes ``User:<image>...`` but ``User: text...``).

``TileLayout`` adds these as fields with defaults that reproduce ``ImageLayout`` exactly, so a
TileLayout with none of them set gives ``prompt.build_prompt``'s text (tested); everything else
(chat rendering, marker counting, ``layout_tokens``) is prompt.py's, unchanged.

Grids are ``[cols, rows]`` as in prompt.py; ``None`` means one chunk (no tiles).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from edgevlm.errors import PromptError
from edgevlm.processing.config import ChatTemplate, ImageLayout
from edgevlm.processing.prompt import Message, PromptText, message_turns, render_chat
from edgevlm.processing.slicing import Grid


@dataclass(frozen=True)
class TileLayout(ImageLayout):
    """``ImageLayout`` plus what tiled images need (defaults: ImageLayout's behaviour)."""

    overview_last: bool = False  # the global image / thumbnail follows the tiles (text and features)
    image_prefix: str = ""  # before the image's first chunk (InternVL: "<img>"); image_suffix closes it
    text_first_prefix: str = ""  # before a turn's text when it does not start with an image marker


def tiled_placeholder(layout: TileLayout, grid: Grid | None, index: int) -> str:
    """Placeholder text of one image; ``{row}`` / ``{col}`` in ``slice_template`` are 1-based."""
    features = layout.feature_token * layout.tokens_per_chunk
    head = layout.image_id_template.format(index=index) if layout.image_id_template else ""
    overview = layout.overview_template.format(features=features)
    tiles = ""
    if grid is not None:
        cols, rows = grid
        lines = ["".join(layout.slice_template.format(features=features, row=r + 1, col=c + 1) for c in range(cols))
                 for r in range(rows)]
        tiles = layout.slices_open + layout.row_separator.join(lines) + layout.slices_close
    body = tiles + overview if layout.overview_last else overview + tiles
    return head + layout.image_prefix + body + layout.image_suffix


def expand_tiled_images(text: str, grids: Sequence[Grid | None], layout: TileLayout) -> str:
    """Replace the i-th marker by image i's placeholder (``after_last_image`` after the last one)."""
    chunks = text.split(layout.marker)
    if len(chunks) - 1 != len(grids):
        raise PromptError(f"the prompt has {len(chunks) - 1} image marker(s) {layout.marker!r} but {len(grids)} "
                          "image(s) were given; use one marker per image or none at all")
    out = [chunks[0]]
    for index, grid in enumerate(grids):
        out.append(tiled_placeholder(layout, grid, index))
        if index == len(grids) - 1:
            out.append(layout.after_last_image)
        out.append(chunks[index + 1])
    return "".join(out)


def build_tiled_prompt(messages: str | Sequence[Message], image_grids: Sequence[Grid | None], layout: TileLayout,
                       template: ChatTemplate, *, system: str | None = None,
                       add_generation_prompt: bool = True) -> PromptText:
    """``prompt.build_prompt`` for a TileLayout: same chat rendering, tiled placeholders."""
    turns = message_turns(messages, len(image_grids), layout, template)
    if layout.text_first_prefix:
        turns = [(role, text if text.startswith(layout.marker) else layout.text_first_prefix + text)
                 for role, text in turns]
    chat = render_chat(turns, template, add_generation_prompt, system)
    return PromptText(expand_tiled_images(chat, image_grids, layout), "", len(image_grids))

