"""M-RoPE position ids as data: three position streams (temporal, height, width) per token.

Qwen2-VL / Qwen2.5-VL (and Qwen3-VL) rotate queries and keys with three position streams. A text
token has the same value in all three; the tokens of one image take their merged-grid coordinates
offset by the position where the image starts: ``t = start``, ``h = start + row``, ``w = start +
col`` (row-major over the ``(H/m) x (W/m)`` merged grid). The position after an image is ``start +
max(H/m, W/m)``: one past the largest id used so far. So a sequence's next free position is always
``max(ids) + 1``, which is what makes a prompt fed in pieces equal to the same prompt in one piece:
each piece starts where the previous one ended (``MropePositions.next_position``).

transformers calls the difference ``next_position - n_tokens`` the ``rope_deltas``; generated
tokens (text) then take ``cache_length + rope_deltas`` in all three streams, the same ids as
continuing with ``next_position`` here.

Exact to transformers' ``Qwen2VLModel.get_rope_index`` for images (tests/test_qwen2vl_mrope.py).
Videos are not handled (their temporal stream is scaled by a per-video time interval).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgevlm.errors import PromptError


@dataclass(frozen=True)
class MropePositions:
    """Position ids of a token run and where the next run starts."""

    position_ids: np.ndarray  # int64 [3, T]: rows (temporal, height, width)
    next_position: int  # the first position of whatever follows (max id + 1, or start for an empty run)

    @property
    def rope_delta(self) -> int:
        """transformers' ``rope_deltas`` for a run that started at 0: next_position - T."""
        return self.next_position - self.position_ids.shape[1]


def image_position_ids(grid_thw, merge_size: int, start: int) -> np.ndarray:
    """int64 [3, t*(h/m)*(w/m)]: the positions of one image's placeholder tokens, starting at ``start``."""
    t, h, w = (int(v) for v in grid_thw)
    rows, cols = h // merge_size, w // merge_size
    temporal = np.repeat(np.arange(t, dtype=np.int64), rows * cols)  # [t*rows*cols]
    height = np.tile(np.repeat(np.arange(rows, dtype=np.int64), cols), t)
    width = np.tile(np.arange(cols, dtype=np.int64), t * rows)
    return np.stack([temporal, height, width]) + start  # [3, n]


def image_token_count(grid_thw, merge_size: int) -> int:
    """Placeholder tokens (= feature rows) of an image with this grid."""
    t, h, w = (int(v) for v in grid_thw)
    return t * (h // merge_size) * (w // merge_size)


def mrope_positions(input_ids: np.ndarray, image_token_id: int, image_grids, merge_size: int,
                    start: int = 0) -> MropePositions:
    """Position ids [3, T] for one token run (a whole prompt, or one piece of a chat).

    ``image_grids`` are the ``grid_thw`` of the images whose placeholders appear in ``input_ids``, in
    order; each image's run of ``image_token_id`` tokens must have exactly its token count. Images
    placed back to back are split by those counts (transformers would merge their runs into one).
    ``start`` is the previous run's ``next_position`` (0 for a new conversation).
    """
    ids = np.asarray(input_ids, dtype=np.int64).reshape(-1)  # [T]
    grids = [tuple(int(v) for v in grid) for grid in (image_grids if image_grids is not None else [])]
    is_image = ids == image_token_id  # [T]
    n_expected = sum(image_token_count(grid, merge_size) for grid in grids)
    if int(is_image.sum()) != n_expected:
        raise PromptError(f"the prompt has {int(is_image.sum())} image placeholder tokens but its {len(grids)} "
                          f"image(s) need {n_expected}; build the prompt from the same image plans")
    out = np.empty((3, ids.shape[0]), dtype=np.int64)
    position, index, image = int(start), 0, 0
    while index < ids.shape[0]:
        if is_image[index]:
            grid = grids[image]
            count = image_token_count(grid, merge_size)
            if not is_image[index:index + count].all():
                raise PromptError(f"image {image}'s placeholder run is shorter than its {count} tokens; "
                                  "build the prompt from the same image plans")
            out[:, index:index + count] = image_position_ids(grid, merge_size, position)
            position += max(grid[1], grid[2]) // merge_size  # = max id used + 1
            index += count
            image += 1
        else:
            end = index + 1
            while end < ids.shape[0] and not is_image[end]:
                end += 1
            out[:, index:end] = np.arange(position, position + end - index, dtype=np.int64)  # all 3 rows
            position += end - index
            index = end
    return MropePositions(out, position)


def text_positions(n_tokens: int, start: int) -> np.ndarray:
    """int64 [3, n]: positions of text (e.g. generated) tokens continuing at ``start``."""
    return np.broadcast_to(np.arange(start, start + n_tokens, dtype=np.int64), (3, n_tokens)).copy()


def stream_of_frequency(mrope_section, interleaved: bool = False, n_freq: int | None = None) -> np.ndarray:
    """int64 [n_freq]: which position stream (0 temporal, 1 height, 2 width) turns each rotary frequency.

    Qwen2-VL / Qwen2.5-VL: contiguous sections in order t, h, w (transformers'
    ``recomposition_frequencies``: [16, 24, 24] of 64 frequencies). Interleaved (Qwen3-VL, Qwen 3.5):
    frequency j turns with h when j % 3 == 1 and j < 3 * section[1], with w when j % 3 == 2 and
    j < 3 * section[2], else with t. ``n_freq`` defaults to sum(section) (the rotary dim / 2). A decoder
    gathers each frequency's position from its stream with this table."""
    section = [int(s) for s in mrope_section]
    if not interleaved:
        return np.repeat(np.arange(len(section), dtype=np.int64), section)
    table = np.zeros(sum(section) if n_freq is None else int(n_freq), dtype=np.int64)
    for stream in (1, 2):
        table[stream:3 * section[stream]:3] = stream
    return table


def rotary_angles(positions: np.ndarray, inv_freq: np.ndarray, streams: np.ndarray | None) -> np.ndarray:
    """float32 [T, head_dim/2] angles position * inv_freq in float32 (as transformers), positions [T] or
    [S, T] with ``streams`` (stream_of_frequency) choosing each frequency's stream (None: stream 0)."""
    pos = np.asarray(positions, np.int64)
    if pos.ndim == 2 and streams is None:
        pos = pos[0]
    if pos.ndim == 2:
        pos = pos[np.asarray(streams), :].T  # [T, hd/2]: frequency j's position from its stream
    else:
        pos = pos[:, None]  # [T, 1]
    return pos.astype(np.float32) * np.asarray(inv_freq, np.float32)[None, :]
