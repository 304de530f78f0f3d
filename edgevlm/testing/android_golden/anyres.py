"""Golden records for the "square" and "anyres" / "anyres_max" processor kinds (``anyres.json``).

For each processor and image size: the plan as the runtime makes it from the size alone (chosen pinpoint,
resized image, padding, tile grid, unpadded and pooled feature map), the token count the prompt takes,
and, at the tiny checkpoints' tile sizes, the sha256 of the float32 vision inputs. Plans are also recorded
at the published LLaVA-NeXT / OneVision settings (336 / 384 px tiles), where pixels would be slow in Java.
The processors come from the LLaVA family's own ``bundle_spec`` (what an exported manifest holds).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from edgevlm.processing.anyres import AnyresConfig, plan_for_prompt
from edgevlm.processing.config import ProcessorConfig
from edgevlm.runtime.images import plan_image, prepare_image

from .common import pattern_image, sha256

PIXEL_SIZES = [(1, 1), (2, 3), (13, 7), (56, 56), (72, 72), (55, 57), (112, 56), (56, 168), (130, 90), (90, 130),
               (40, 300), (300, 40), (1, 200), (200, 1), (144, 144), (500, 480), (640, 480), (480, 640), (431, 100),
               (1000, 900), (333, 777), (97, 1201)]


def plan_sizes() -> list[tuple[int, int]]:
    """~200 sizes for the plan-only records: around the pinpoints of both published settings, extremes, random."""
    sizes = [(1, 1), (1, 4000), (4000, 1), (5, 3000), (3000, 5), (4000, 4000), (2305, 2303), (5000, 1200)]
    for side in (336, 384):
        for a, b in ((1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (1, 3), (6, 6), (2, 5)):
            w, h = side * a, side * b
            sizes += [(w, h), (w - 1, h + 1), (w + 1, h - 1), (w + 1, h + 1)]
    rng = np.random.RandomState(2020)
    sizes += [tuple(int(v) for v in np.exp(rng.uniform(np.log(8), np.log(3000), 2))) for _ in range(130)]
    return list(dict.fromkeys(sizes))


def processors() -> dict[str, tuple[ProcessorConfig, bool]]:
    """name -> (processor, with pixels): the tiny checkpoints' (from the family's bundle_spec), a "pad"
    variant, and the published settings (plans only)."""
    from edgevlm.families import FAMILIES
    from edgevlm.families.llava.tiny import random_config

    ids = {t: i for i, t in enumerate(["<unk>", "<s>", "</s>", "<image>", "<pad>", "<|endoftext|>", "<|im_start|>",
                                        "<|im_end|>", "<video>"])}
    family = FAMILIES["llava"]
    out = {name: (family.bundle_spec(None, random_config(name, 600, ids)).processor, True)
           for name in ("llava", "llava-next", "llava-onevision")}
    out["llava-pad"] = (dataclasses.replace(out["llava"][0], options={"mode": "pad"}), True)
    clip = dict(mean=out["llava"][0].mean, std=out["llava"][0].std)
    next_pins = ((336, 672), (672, 336), (672, 672), (1008, 336), (336, 1008))
    out["next-336"] = (AnyresConfig(tile_size=336, pinpoints=next_pins).processor(**clip), False)
    ov_pins = tuple((384 * i, 384 * j) for i in range(1, 7) for j in range(1, 7))
    out["onevision-384"] = (AnyresConfig(tile_size=384, pinpoints=ov_pins, max_tiles=9).processor(), False)
    return out


def _record(name: str, cfg: ProcessorConfig, width: int, height: int, n_images: int, pixels: bool) -> dict[str, Any]:
    seed = (width * 7 + height) % 5
    record: dict[str, Any] = {"processor_name": name, "width": width, "height": height, "seed": seed,
                              "n_images": n_images}
    tokens = (cfg.image_size // cfg.patch_size) ** 2
    if cfg.kind.startswith("anyres"):
        plan = plan_for_prompt(height, width, AnyresConfig.from_processor(cfg), n_images)
        record["plan"] = dataclasses.asdict(plan)
        runtime = plan_image(_Sized(width, height), cfg, tokens, n_images)  # the processor kind's own plan
        assert runtime.data["anyres"] == plan
        record.update(n_tokens=runtime.n_tokens, n_chunks=plan.n_chunks)
    else:
        record.update(n_tokens=tokens, n_chunks=1)
    if pixels:
        image = pattern_image(width, height, seed)
        prepared = prepare_image(image, cfg, plan_image(image, cfg, tokens, n_images))
        values = prepared.inputs["pixel_values"]  # float32 [n_chunks, 3, S, S]
        record.update(pixel_values_shape=list(values.shape), pixel_values_sha256=sha256(values))
    return record


class _Sized:
    """Stands in for an image where only its size is read (a plan never touches pixels)."""

    def __init__(self, width: int, height: int):
        self.size = (width, height)


def anyres_records() -> dict[str, Any]:
    cases = []
    specs = processors()
    for name, (cfg, pixels) in specs.items():
        for width, height in (PIXEL_SIZES if pixels else plan_sizes()):
            counts = (1, 2) if cfg.kind == "anyres_max" else (1,)
            cases += [_record(name, cfg, width, height, n, pixels) for n in counts]
    return {"processors": {name: cfg.to_dict() for name, (cfg, _) in specs.items()}, "cases": cases}
