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
from ..processing.canvas_rope import canvas_positions, layout_markers
from ..processing.mrope import mrope_positions
from ..processing.prompt import PromptText, build_prompt, expand_images, layout_tokens, message_turns
from .images import image_kind, pack_features, plan_image, prepare_image, request_processor
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
    positions: np.ndarray  # int64 [T] (or [3, T]) position ids
    next_position: int  # the position id after this turn's tokens
    images: int = 0
    images_from_cache: int = 0
    image_tokens: int = 0
    slicing_ms: float = 0.0  # image loading + preprocessing
    vision_ms: float = 0.0


def turn_text(vlm: Any, conv: Conversation, text: str, plans: list, raw: bool = False) -> str:
    """Prompt text of the next turn: the whole opening on turn 1, else close + user turn + cue.

    ``raw``: the text as written (a completion of a base model), with the tokenizer's BOS on turn 1
    and each image's placeholder where its marker is (or before the text when there is none)."""
    template, layout = vlm.template, vlm.layout
    if raw:
        if plans and layout.marker not in text:
            text = layout.auto_marker_joiner.join([layout.marker] * len(plans) + [text])
        body = expand_images(text, plans, layout, conv.images) if plans else text
        return (template.bos if conv.turns == 0 else "") + body
    if conv.turns == 0:
        return build_prompt(text, plans, layout, template, system=conv.system).text
    (_, content), = message_turns(text, len(plans), layout, template)
    if template.strip_content != "none":
        content = content.strip()
    close = template.assistant_template.split("{content}", 1)[1]  # e.g. "<|im_end|>\n"
    turn = close + template.user_template.format(content=content) + template.generation_prompt
    return expand_images(turn, plans, layout, conv.images) if plans else turn


def turn_positions(vlm: Any, conv: Conversation, ids: np.ndarray, plans: list) -> tuple[np.ndarray, int]:
    """(position ids [T] or [3, T], the next position) of a turn's tokens, continuing the conversation.

    One stream: consecutive ids. Three streams (M-RoPE): an image's tokens take their grid coordinates
    (``plan.data["position_grid"]``, in merged units), text the same id in all three (processing/mrope.py);
    or, for plans that place the image's crops on a canvas (``plan.data["canvas"]``), canvas M-RoPE
    (processing/canvas_rope.py). Text alone gives the same ids either way.
    """
    if vlm.manifest.text.position_streams == 1:
        return np.arange(len(ids), dtype=np.int64) + conv.next_position, conv.next_position + len(ids)
    if plans and all("canvas" in plan.data for plan in plans):
        run = canvas_positions(ids, vlm.manifest.tokenizer.image_token_id, [p.data["canvas"] for p in plans],
                               layout_markers(vlm.tokenizer, vlm.layout), conv.next_position)
        return run.position_ids, run.next_position
    grids = [plan.data["position_grid"] for plan in plans]
    run = mrope_positions(ids, vlm.manifest.tokenizer.image_token_id, grids, 1, conv.next_position)
    return run.position_ids, run.next_position


def prepare_turn(vlm: Any, conv: Conversation, text: str, images: Sequence[Any] = (), raw: bool = False,
                 image_options: dict[str, Any] | None = None) -> PreparedTurn:
    """The next turn of ``conv`` as tokens, feature rows, blocks and positions (PromptError if it does not fit).

    ``image_options``: per-request processor settings (e.g. ``max_pixels``, runtime/images.py request_processor)."""
    t_load = time.perf_counter()
    processor = request_processor(vlm.processor, image_options or {})  # bad settings fail before any image work
    pictures = [load_image(src, processor.max_pixels) for src in images]
    settings = repr(sorted(processor.to_dict().items()))  # the cache keys on every setting, overrides included
    # Images in the conversation so far, this turn's included: the prompt the model would see if the whole
    # conversation were rendered at once. A kind whose plan depends on it (one that tiles only a lone image)
    # plans this turn's images with it; images fed in earlier turns keep the plans they were fed with.
    count = conv.images + len(pictures)
    counted = f"/{count} images" if image_kind(processor).depends_on_count else ""
    keys = [image_key(p, settings + counted) for p in pictures]
    cached = [vlm.vision_cache.get(k) for k in keys]
    tokens = vlm.manifest.vision.tokens_per_chunk if vlm.manifest.vision is not None else 0
    plans = [c[1] if c is not None else plan_image(p, processor, tokens, count)
             for c, p in zip(cached, pictures)]
    load_s = time.perf_counter() - t_load

    layout = layout_tokens(vlm.tokenizer, PromptText(turn_text(vlm, conv, text, plans, raw)), vlm.layout,
                           tokens_per_image=[plan.n_tokens for plan in plans])
    ids = np.concatenate([np.asarray(conv.pending, dtype=np.int64), layout.input_ids])  # [T]
    blocks = np.concatenate([np.full(len(conv.pending), -1, np.int32), layout.block_ids])  # [T]
    used = conv.n_fed
    if used + len(ids) + 1 > vlm.max_context:
        raise PromptError(
            f"the prompt needs {len(ids)} tokens ({len(layout.image_positions)} for {len(images)} image(s))"
            f"{f' after {used} tokens of earlier turns' if used else ''}, more than the context of "
            f"{vlm.max_context} allows; shorten the prompt, use fewer or smaller images (max_slice_nums), "
            "start a new chat, or export with a larger --max-context")

    positions, next_position = turn_positions(vlm, conv, ids, plans)
    turn = PreparedTurn(ids, None, blocks if (blocks >= 0).any() else None, positions, next_position,
                        images=len(pictures), image_tokens=len(layout.image_positions))
    rows, t_slice, t_vision = [], load_s, 0.0
    for picture, key, hit, plan in zip(pictures, keys, cached, plans):
        if hit is not None:
            rows.append(hit[0])
            turn.images_from_cache += 1
            continue
        t0 = time.perf_counter()
        prepared = prepare_image(picture, processor, plan)
        t1 = time.perf_counter()
        tiles = vlm.backend.encode_images(prepared.inputs)  # [n_chunks, tokens, hidden]
        features = pack_features(tiles, processor, plan, vlm.tables)  # [K_i, hidden] in prompt order
        t_slice, t_vision = t_slice + t1 - t0, t_vision + time.perf_counter() - t1
        vlm.vision_cache.put(key, features, plan)
        rows.append(features)
    if rows:
        turn.rows = np.concatenate(rows)  # [K, hidden]
    turn.slicing_ms, turn.vision_ms = t_slice * 1e3, t_vision * 1e3
    return turn
