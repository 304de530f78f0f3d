"""An image's plan: how many chunks the vision part sees and how many feature rows each gives.

A processor kind (runtime/images.py) plans an image from its size alone, before any pixel work, so
the prompt's length is known first. The prompt layout (prompt.py) spells the plan out as text:
the overview chunk's run of feature tokens and, for tiled or sliced images, one run per tile in a
grid. Feature rows come out of the vision part in the same order as the runs in the text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Grid = list  # [cols, rows]


@dataclass(frozen=True)
class ImagePlan:
    grid: tuple[int, int] | None  # (cols, rows) of the tiles / slices; None: the image is one chunk
    overview_tokens: int  # feature rows of the overview (the whole image, or the only chunk)
    slice_tokens: tuple[int, ...] = ()  # feature rows of each tile, row-major (empty when not tiled)
    data: dict[str, Any] = field(default_factory=dict, compare=False)  # kind-specific (e.g. grid_thw for positions)

    @classmethod
    def uniform(cls, grid: Any, tokens: int, **data: Any) -> "ImagePlan":
        """Every chunk gives ``tokens`` rows (a resampler or a fixed-size tower)."""
        if grid is None:
            return cls(None, tokens, (), data)
        cols, rows = int(grid[0]), int(grid[1])
        return cls((cols, rows), tokens, (tokens,) * (cols * rows), data)

    @property
    def n_chunks(self) -> int:
        return 1 + len(self.slice_tokens)

    @property
    def n_tokens(self) -> int:
        return self.overview_tokens + sum(self.slice_tokens)
