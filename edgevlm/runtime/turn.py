"""Layer 1 of a turn: prepare it. Images, prompt text, token ids, feature rows, attention blocks, positions.

Everything heavy waits until the prompt is known to fit: images are decoded and their chunk layout
planned from their sizes alone, the turn's tokens laid out and checked against the context, and
only then are images preprocessed and encoded (or taken from the vision-feature cache). The
result is what ``generate.feed`` hands the backend; the generation loop (generate.py) and the text
stream (text_stream.py) follow. ``VLM``/``Chat`` (vlm.py), the export parity check, the
quantization report and the benchmarks all prepare turns here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import PromptError
from ..processing.images import load_image
from ..processing.prompt import PromptText, build_prompt, chunk_count, expand_images, layout_tokens, message_turns
from .images import grid_of, prepare_image
from .vision_cache import image_key


@dataclass
class Conversation:
    """What one chat has fed so far: the cache holds ``fed``; ``pending`` was sampled but not fed yet."""

    system: str | None = None
    turns: int = 0
    fed: list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray]] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)  # the last token of a turn that stopped at its length
    history: list[int] = field(default_factory=list)  # every token id of the conversation (repetition penalty)
    next_position: int = 0  # position id of the next token (continues M-RoPE streams past the images)
    images: int = 0  # images in the conversation so far (image ids continue across turns)

    @property
    def n_fed(self) -> int:
        return sum(len(segment[0]) for segment in self.fed)


@dataclass
class PreparedTurn:
    ids: np.ndarray  # int64 [T]: the previous turn's pending token + this turn's tokens
    rows: np.ndarray | None  # float32 [K, hidden]: image features in placeholder order
    blocks: np.ndarray | None  # int32 [T] attention blocks (None: all causal)
    positions: np.ndarray  # int64 [T] position ids
    images: int = 0
    images_from_cache: int = 0
    image_tokens: int = 0
    slicing_ms: float = 0.0  # image loading + preprocessing
    vision_ms: float = 0.0


def turn_text(vlm: Any, conv: Conversation, text: str, grids: list, raw: bool = False) -> str:
    """Prompt text of the next turn: the whole opening on turn 1, else close + user turn + cue.

    ``raw``: the text as written (a completion of a base model), with the tokenizer's BOS on turn 1
    and each image's placeholder where its marker is (or before the text when there is none)."""
    template, layout = vlm.template, vlm.layout
    if raw:
        if grids and layout.marker not in text:
            text = layout.auto_marker_joiner.join([layout.marker] * len(grids) + [text])
        body = expand_images(text, grids, layout, conv.images) if grids else text
        return (template.bos if conv.turns == 0 else "") + body
    if conv.turns == 0:
        return build_prompt(text, grids, layout, template, system=conv.system).text
    (_, content), = message_turns(text, len(grids), layout, template)
    if template.strip_content != "none":
        content = content.strip()
    close = template.assistant_template.split("{content}", 1)[1]  # e.g. "<|im_end|>\n"
    turn = close + template.user_template.format(content=content) + template.generation_prompt
    return expand_images(turn, grids, layout, conv.images) if grids else turn


def prepare_turn(vlm: Any, conv: Conversation, text: str, images: Sequence[Any] = (), raw: bool = False
                 ) -> PreparedTurn:
    """The next turn of ``conv`` as tokens, feature rows, blocks and positions (PromptError if it does not fit)."""
    t_load = time.perf_counter()
    pictures = [load_image(src, vlm.processor.max_pixels) for src in images]
    settings = repr(sorted(vlm.manifest.processor.items()))
    keys = [image_key(p, settings) for p in pictures]
    cached = [vlm.vision_cache.get(k) for k in keys]
    grids = [c[1] if c is not None else grid_of(p, vlm.processor) for c, p in zip(cached, pictures)]
    load_s = time.perf_counter() - t_load

    layout = layout_tokens(vlm.tokenizer, PromptText(turn_text(vlm, conv, text, grids, raw)), vlm.layout,
                           [chunk_count(g) for g in grids])
    ids = np.concatenate([np.asarray(conv.pending, dtype=np.int64), layout.input_ids])  # [T]
    blocks = np.concatenate([np.full(len(conv.pending), -1, np.int32), layout.block_ids])  # [T]
    used = conv.n_fed
    if used + len(ids) + 1 > vlm.max_context:
        raise PromptError(
            f"the prompt needs {len(ids)} tokens ({len(layout.image_positions)} for {len(images)} image(s))"
            f"{f' after {used} tokens of earlier turns' if used else ''}, more than the context of "
            f"{vlm.max_context} allows; shorten the prompt, use fewer or smaller images (max_slice_nums), "
            "start a new chat, or export with a larger --max-context")

    turn = PreparedTurn(ids, None, blocks if (blocks >= 0).any() else None,
                        np.arange(len(ids), dtype=np.int64) + conv.next_position, images=len(pictures),
                        image_tokens=len(layout.image_positions))
    features, t_slice, t_vision = [], load_s, 0.0
    for picture, key, hit in zip(pictures, keys, cached):
        if hit is not None:
            features.append(hit[0])
            turn.images_from_cache += 1
            continue
        t0 = time.perf_counter()
        prepared = prepare_image(picture, vlm.processor)
        t1 = time.perf_counter()
        feats = vlm.backend.encode_images(prepared.inputs)  # [n_chunks, tokens, hidden]
        t_slice, t_vision = t_slice + t1 - t0, t_vision + time.perf_counter() - t1
        vlm.vision_cache.put(key, feats, prepared.grid)
        features.append(feats)
    if features:
        turn.rows = np.concatenate([f.reshape(-1, f.shape[-1]) for f in features])  # [K, hidden]
    turn.slicing_ms, turn.vision_ms = t_slice * 1e3, t_vision * 1e3
    return turn
