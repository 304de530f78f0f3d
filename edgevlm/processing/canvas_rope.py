"""Canvas M-RoPE: three position streams for sliced images laid out on one canvas (MiniCPM-V 4.7).

An image of an overview ("thumbnail") and slices is placed on a canvas of ``rows x slice_h`` by
``cols x slice_w`` cells (merged units: one cell per feature row); text keeps one position id in all
three streams (temporal, height, width). Per image ("frame"), at ``origin`` = the next free position:
- every token of the frame starts at ``origin`` in all streams;
- the thumbnail's rows are stretched over the whole canvas: row i sits at height
  ``round(linspace(0, canvas_h - 1, thumb_h))[i]`` (width likewise), temporal ``origin``;
- slice k (row-major) covers its own cells at its offset on the canvas;
- the markers pin corners: the image-start marker sits at the halo ``origin - 1`` (height and width),
  the image-end marker at ``(canvas_h, canvas_w)``, each slice-start marker at its slice's top-left,
  each slice-end marker at its bottom-right, and the newline ending a row of slices just past that
  row's right edge (all offsets from ``origin``);
- what follows the frame starts at ``origin + max(canvas_h, canvas_w) + 1``, one past the largest id used.

Exact to transformers' ``MiniCPMV4_7Model.get_rope_index`` for images (tests/test_minicpmv46_positions.py),
including its float32 ``torch.linspace`` rounding, its grouping of frames that only markers separate and
its reading of a frame's end (the markers right after the last crop belong to the frame). The
crops' grids come from the image plans (``ImagePlan.data["canvas"]``, processing/slice_merge.py); the
marker ids from the prompt layout's templates. A prompt fed in pieces equals the same prompt fed at once:
each piece starts at the previous piece's next position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import PromptError
from .mrope import MropePositions


@dataclass(frozen=True)
class CanvasMarkers:
    """Token ids of the markers around an image's crops."""

    image_start: int
    image_end: int
    slice_start: int
    slice_end: int
    newline: int

    @property
    def all(self) -> tuple[int, ...]:
        return (self.slice_start, self.slice_end, self.image_start, self.image_end, self.newline)


def stretched(canvas: int, cells: int) -> np.ndarray:
    """round(torch.linspace(0, canvas - 1, cells)) in float32 as torch computes it (halves to even)."""
    if cells == 1:
        return np.zeros(1, np.int64)
    end = np.float32(canvas - 1)
    step = np.float32(end / np.float32(cells - 1))
    index = np.arange(cells)
    half = cells // 2
    values = np.empty(cells, np.float32)
    values[:half] = step * index[:half].astype(np.float32)  # torch: start + step * i for the first half
    values[half:] = end - step * (cells - index[half:] - 1).astype(np.float32)  # end - step * (n - 1 - i)
    return np.rint(values).astype(np.int64)


def _grid_positions(origin: int, h: int, w: int, canvas_h: int = 0, canvas_w: int = 0, h_off: int = 0,
                    w_off: int = 0) -> np.ndarray:
    """int64 [3, h*w]: a crop of h x w cells on the canvas (stretched over canvas_h x canvas_w when given)."""
    rows = stretched(canvas_h or h, h) + h_off
    cols = stretched(canvas_w or w, w) + w_off
    height, width = np.meshgrid(rows, cols, indexing="ij")
    return np.stack([np.zeros(h * w, np.int64), height.reshape(-1), width.reshape(-1)]) + origin


def _crops(is_image: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of every maximal run of image tokens."""
    edges = np.diff(np.concatenate([[0], is_image.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def _frames(ids: np.ndarray, crops: list[tuple[int, int]], markers: CanvasMarkers):
    """Groups of frames (transformers' ``_group_visual_frames``): [(group start, group end, frames)], each
    frame (thumb start, thumb end, frame end, slices)."""
    marker_set = set(markers.all)
    groups: list[tuple[int, list]] = []
    open_slices: list | None = None
    previous_end = 0
    for start, end in crops:
        if open_slices is not None and ids[start - 1] == markers.slice_start:
            open_slices.append((start, end))
        else:
            open_slices = []
            frame = (start, end, open_slices)
            gap = ids[previous_end:start - 1]
            if groups and all(int(t) in marker_set for t in gap):
                groups[-1][1].append(frame)
            else:
                groups.append((start - 1, [frame]))
        previous_end = end
    out = []
    for group_start, frames in groups:
        done = []
        for thumb_start, thumb_end, slices in frames:
            frame_end = slices[-1][1] if slices else thumb_end
            while frame_end < len(ids) and int(ids[frame_end]) in marker_set:
                frame_end += 1
            done.append((thumb_start, thumb_end, frame_end, slices))
        out.append((group_start, done[-1][2], done))
    return out


def canvas_positions(input_ids: np.ndarray, image_token_id: int, canvases: Sequence[Sequence[Sequence[int]]],
                     markers: CanvasMarkers, start: int = 0) -> MropePositions:
    """Position ids [3, T] of one token run; ``canvases[i]`` lists image i's crops as [h, w] cells
    (the thumbnail, then its slices row-major), in the order the images appear."""
    ids = np.asarray(input_ids, np.int64).reshape(-1)
    is_image = ids == image_token_id
    crops = _crops(is_image)
    sizes = iter([tuple(int(v) for v in cell) for canvas in canvases for cell in canvas])
    n_cells = sum(len(c) for c in canvases)
    if len(crops) != n_cells:
        raise PromptError(f"the prompt has {len(crops)} runs of image tokens but its images have {n_cells} crops; "
                          "build the prompt from the same image plans")
    out = np.broadcast_to(np.arange(len(ids), dtype=np.int64), (3, len(ids))).copy()
    current, cursor = int(start), 0
    for group_start, group_end, frames in _frames(ids, crops, markers):
        if group_start > cursor:  # text before the group: one id per token in all streams
            out[:, cursor:group_start] = np.arange(group_start - cursor) + current
            current += group_start - cursor
        frame_cursor = group_start
        for thumb_start, thumb_end, frame_end, slices in frames:
            current = _frame(out, ids, current, frame_cursor, thumb_start, thumb_end, min(frame_end, group_end),
                             slices, sizes)
            frame_cursor = min(frame_end, group_end)
        if frame_cursor < group_end:
            out[:, frame_cursor:group_end] = np.arange(group_end - frame_cursor) + current
            current += group_end - frame_cursor
        cursor = group_end
    if cursor < len(ids):
        out[:, cursor:] = np.arange(len(ids) - cursor) + current
    next_position = int(out.max()) + 1 if len(ids) else int(start)
    return MropePositions(out, max(next_position, int(start)))


def _frame(out: np.ndarray, ids: np.ndarray, current: int, cursor: int, thumb_start: int, thumb_end: int,
           frame_end: int, slices: list[tuple[int, int]], sizes) -> int:
    """Write one frame's positions into ``out``; returns the position after it."""
    frame_start = thumb_start - 1
    if frame_start > cursor:  # tokens between two frames of a group, then one step of room
        out[:, cursor:frame_start] = np.arange(frame_start - cursor) + current
        current += frame_start - cursor + 1
    origin = current
    thumb_h, thumb_w = next(sizes)
    canvas_h, canvas_w, slice_h, slice_w, cols = thumb_h, thumb_w, 0, 0, 0
    first_slice = None
    if slices:
        cols = len(slices)  # a gap longer than "</slice><slice>" is the newline ending a row
        for k in range(len(slices) - 1):
            if slices[k + 1][0] - slices[k][1] > 2:
                cols = k + 1
                break
        rows = len(slices) // cols if cols else 1
        if rows * cols != len(slices):
            rows, cols = 1, len(slices)
        first_slice = next(sizes)
        slice_h, slice_w = first_slice
        canvas_h, canvas_w = rows * slice_h, cols * slice_w
    out[:, frame_start:frame_end] = origin
    out[1:, frame_start] = max(origin - 1, 0)  # the image-start marker: the halo outside the canvas
    if thumb_end < frame_end:  # the image-end marker: the canvas' far corner
        out[1, thumb_end], out[2, thumb_end] = origin + canvas_h, origin + canvas_w
    out[:, thumb_start:thumb_end] = _grid_positions(origin, thumb_h, thumb_w, canvas_h, canvas_w)
    for k, (s_start, s_end) in enumerate(slices):
        h_off, w_off = (k // cols) * slice_h, (k % cols) * slice_w
        h, w = first_slice if k == 0 else next(sizes)
        if s_start - 1 >= frame_start:
            out[1, s_start - 1], out[2, s_start - 1] = origin + h_off, origin + w_off
        if s_end < frame_end:
            out[1, s_end], out[2, s_end] = origin + h_off + h - 1, origin + w_off + w - 1
        out[:, s_start:s_end] = _grid_positions(origin, h, w, h_off=h_off, w_off=w_off)
    for k in range(len(slices) - 1):  # the newline ending a row sits past the row's right edge
        gap_start, gap_end = slices[k][1], slices[k + 1][0]
        if gap_end - gap_start > 2:
            out[1, gap_start + 1:gap_end - 1] = origin + (k // cols + 1) * slice_h - 1
            out[2, gap_start + 1:gap_end - 1] = origin + cols * slice_w
    return origin + max(canvas_h, canvas_w) + 1


def layout_markers(tokenizer, layout) -> CanvasMarkers:
    """The marker ids of a prompt layout (ImageLayout): the overview template's and the slice template's
    text before and after ``{features}``, and the row separator; each must be one token."""
    pieces = {"image_start": layout.overview_template.split("{features}")[0],
              "image_end": layout.overview_template.split("{features}")[1],
              "slice_start": layout.slice_template.split("{features}")[0],
              "slice_end": layout.slice_template.split("{features}")[1], "newline": layout.row_separator}
    ids = {}
    for name, text in pieces.items():
        encoded = list(tokenizer.encode(text))
        if len(encoded) != 1:
            raise PromptError(f"canvas positions need the layout's {name} marker {text!r} to be one token, and the "
                              f"tokenizer gives {len(encoded)}; the bundle's layout and tokenizer do not match")
        ids[name] = int(encoded[0])
    return CanvasMarkers(**ids)
