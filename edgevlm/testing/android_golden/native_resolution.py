"""Golden records for native-resolution preprocessing (``native_resolution.json``): Qwen2-VL's plans, pixels,
token counts and prompts, as the runtime computes them (runtime/images.py ``native_resolution`` kind).

For many sizes and pixel budgets (the published one and per-request ones): the plan from the size alone
(resized size, grid_thw, image tokens, M-RoPE position grid) or the runtime's error, the sha256 of the
resized uint8 image (small inputs) and of the float32 patch rows; and prompt texts whose placeholder runs
come from those plans (opening and follow-up turns).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
from PIL import Image

from edgevlm.errors import EdgeVLMError
from edgevlm.processing.config import ChatTemplate, ImageLayout
from edgevlm.processing.native_resolution import NativeResolutionConfig
from edgevlm.runtime.images import plan_image, prepare_image, request_processor
from edgevlm.runtime.turn import Conversation, turn_text

from .common import pattern_image, sha256

# (min_pixels, max_pixels) per request; None keeps the bundle's (published: 3136, 12845056)
BUDGETS = [(None, None), (None, 28 * 28 * 256), (None, 28 * 28 * 64), (28 * 28 * 128, None), (None, 28 * 28 * 16)]
SIZES = [(28, 28), (29, 57), (56, 56), (70, 70), (98, 42), (100, 100), (224, 224), (300, 200), (123, 457),
         (640, 480), (480, 640), (1024, 768), (1280, 720), (1920, 1080), (1080, 1920), (33, 4321), (4000, 30),
         (2000, 1999), (333, 777), (1366, 768), (5600, 28)]
ERRORS = [(27, 300, None, None), (5, 3, None, None), (28, 5601, None, None), (300, 200, 500_000, 200_000),
          (300, 200, None, 700), (300, 200, 0, None)]


def settings() -> dict[str, Any]:
    """The spec a Qwen2-VL bundle writes (families/qwen2_vl/spec.py), from the published preprocessor config."""
    from edgevlm.families import FAMILIES
    from edgevlm.families.qwen2_vl.tiny import CLIP_MEAN, CLIP_STD

    config = {"model_type": "qwen2_vl", "vision_config": {"patch_size": 14, "spatial_merge_size": 2}}
    spec = FAMILIES["qwen2_vl"].bundle_spec(None, config)
    processor = NativeResolutionConfig.from_preprocessor_config({"min_pixels": 3136, "max_pixels": 12845056,
                                                                 "image_mean": CLIP_MEAN, "image_std": CLIP_STD})
    return {"processor": processor.processor_config().to_dict(), "layout": spec.layout.to_dict(),
            "chat_template": spec.chat_template.to_dict()}


def _request(spec: dict[str, Any], min_pixels: int | None, max_pixels: int | None):
    from edgevlm.processing.config import ProcessorConfig

    return request_processor(ProcessorConfig.from_dict(spec["processor"]),
                             {"min_pixels": min_pixels, "max_pixels": max_pixels})


def image_record(spec: dict[str, Any], w: int, h: int, seed: int, min_pixels: int | None,
                 max_pixels: int | None) -> dict[str, Any]:
    record: dict[str, Any] = {"width": w, "height": h, "seed": seed, "min_pixels": min_pixels, "max_pixels": max_pixels}
    image = pattern_image(w, h, seed)
    try:
        cfg = _request(spec, min_pixels, max_pixels)
        plan = plan_image(image, cfg, 0)
    except EdgeVLMError as exc:
        return {**record, "error": type(exc).__name__, "message": str(exc)}
    resized = plan.data["grid_thw"][2] * cfg.patch_size, plan.data["grid_thw"][1] * cfg.patch_size
    record.update(resized_size=list(resized), grid_thw=list(plan.data["grid_thw"]), n_tokens=plan.n_tokens,
                  position_grid=list(plan.data["position_grid"]))
    if w * h <= 1_500_000:
        record["resized_sha256"] = sha256(np.asarray(image.resize(resized, Image.Resampling.BICUBIC)))
        record["pixel_values_sha256"] = sha256(prepare_image(image, cfg, plan).inputs["pixel_values"])
    return record


def prompt_records(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Prompt texts with placeholder runs from the images' plans (opening turns and a follow-up)."""
    layout, template = ImageLayout.from_dict(spec["layout"]), ChatTemplate.from_dict(spec["chat_template"])
    model = SimpleNamespace(layout=layout, template=template)
    out = []
    for sizes, max_pixels, text, turns in [([(300, 200)], None, "What is this?", 0),
                                           ([(640, 480), (123, 457)], 28 * 28 * 64, "Compare them.", 0),
                                           ([(1024, 768)], 28 * 28 * 16, "And this one?", 1), ([], None, "Hi", 0)]:
        cfg = _request(spec, None, max_pixels)
        plans = [plan_image(pattern_image(w, h, 0), cfg, 0) for w, h in sizes]
        conv = Conversation(turns=turns, images=turns)
        out.append({"sizes": [list(s) for s in sizes], "max_pixels": max_pixels, "text": text, "turns_before": turns,
                    "tokens": [p.n_tokens for p in plans], "prompt": turn_text(model, conv, text, plans)})
    return out


def native_resolution_records() -> dict[str, Any]:
    spec = settings()
    images = [image_record(spec, w, h, i % 3, *budget) for i, (w, h) in enumerate(SIZES) for budget in BUDGETS]
    images += [image_record(spec, w, h, 0, lo, hi) for w, h, lo, hi in ERRORS]
    return {"spec": spec, "images": images, "prompts": prompt_records(spec)}
