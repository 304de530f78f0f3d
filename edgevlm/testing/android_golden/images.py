"""Golden records for image preprocessing: LLaVA-UHD slice plans and pixels, fixed-size resizes, the tiled
processors (square / aspect-ratio tiles), the normalisation tables (``slicing.json``), and the vision graph's
derived inputs (``vision_inputs.json``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from edgevlm.processing.config import ProcessorConfig
from edgevlm.processing.normalize import _lookup_table
from edgevlm.processing.preprocess import preprocess_fixed, preprocess_slices
from edgevlm.processing.slice_merge import plan_merged
from edgevlm.processing.slicing import plan_slices, resize_for_plan
from edgevlm.processing.vision_inputs import DERIVED, PACKED_TABLES, derived_inputs

from .common import pattern_image, sha256, write_bin


# -- slicing, resizing, normalisation -----------------------------------------------------------
def slicing_sizes() -> list[tuple[int, int]]:
    """>= 60 sizes: degenerate, square, phone/camera aspect ratios, extreme strips, and random ones."""
    fixed = [(1, 1), (2, 3), (13, 7), (14, 14), (27, 29), (100, 100), (224, 224), (447, 449), (448, 448),
             (449, 448), (500, 500), (640, 480), (480, 640), (800, 600), (896, 896), (1000, 1), (1, 1000),
             (1024, 768), (1280, 720), (720, 1280), (1344, 1344), (1600, 900), (1920, 1080), (1080, 1920),
             (2000, 50), (50, 2000), (3000, 100), (100, 3000), (2048, 1536), (1536, 2048), (2560, 1440),
             (4032, 3024), (1500, 1499), (999, 1001), (672, 448), (1344, 448), (448, 1344)]
    rng = np.random.RandomState(20260510)
    randoms = [(int(w), int(h)) for w, h in zip(rng.randint(16, 1600, 31), rng.randint(16, 1600, 31))]
    return fixed + randoms


def slicing_cases() -> list[dict[str, Any]]:
    cases = []
    for index, (w, h) in enumerate(slicing_sizes()):
        cases.append({"width": w, "height": h, "seed": index % 5, "max_slice_nums": 9})
    # other settings on a few sizes: fewer/more slices, no split, MiniCPM-V 4.6-style alignment
    for w, h in [(640, 480), (1920, 1080), (1080, 1920), (1600, 1200), (3000, 100), (900, 700)]:
        for extra in ({"max_slice_nums": 4}, {"max_slice_nums": 16}, {"max_slice_nums": 1},
                      {"never_split": True}, {"resize_align": 28}, {"resize_align": 56}):
            cases.append({"width": w, "height": h, "seed": 7, "max_slice_nums": 9, **extra})
    return cases


def slicing_record(case: dict[str, Any]) -> dict[str, Any]:
    cfg = ProcessorConfig(max_slice_nums=case["max_slice_nums"], never_split=case.get("never_split", False),
                          resize_align=case.get("resize_align"))
    image = pattern_image(case["width"], case["height"], case["seed"])
    align = cfg.resize_align or cfg.patch_size
    plan = plan_slices(image.size, cfg.max_slice_nums, cfg.scale_resolution, align, cfg.never_split)
    sliced = preprocess_slices(image, cfg)
    pixel_values, mask = sliced.batched()  # [n, 3, p, L_max] float32, [n, L_max/p] bool
    return {
        **case,
        "processor": cfg.to_dict(),
        "image_sha256": sha256(np.asarray(image)),
        "overview_size": list(plan.overview_size),
        "grid": plan.grid,
        "refine_size": None if plan.refine_size is None else list(plan.refine_size),
        "slice_size": None if plan.slice_size is None else list(plan.slice_size),
        "tgt_sizes": sliced.tgt_sizes.tolist(),
        "pixel_values_shape": list(pixel_values.shape),
        "pixel_values_sha256": sha256(pixel_values),
        "patch_mask_sha256": sha256(mask.astype(np.uint8)),
        **_resized_hashes(image, plan),
    }


def _resized_hashes(image: Image.Image, plan) -> dict[str, Any]:
    """sha256 of the resized uint8 images, for small inputs only: they say which resize differs when the
    float32 hash (which already covers them: the lookup table is one-to-one) does not match."""
    if image.size[0] * image.size[1] > 1_000_000:
        return {}
    overview, refine = resize_for_plan(image, plan)
    return {"overview_sha256": sha256(np.asarray(overview)),
            "refine_sha256": None if refine is None else sha256(np.asarray(refine))}


def fixed_records() -> list[dict[str, Any]]:
    out = []
    for w, h, seed in [(640, 480, 0), (224, 224, 1), (50, 2000, 2), (1, 1, 3), (1919, 1081, 4), (300, 301, 0)]:
        for size, resample in [(224, "bicubic"), (448, "bicubic"), (896, "bilinear"), (64, "bilinear")]:
            cfg = ProcessorConfig(kind="fixed", image_size=size, resample=resample)
            image = pattern_image(w, h, seed)
            pixels = preprocess_fixed(image, cfg)  # float32 [3, S, S]
            resized = np.asarray(image.resize((size, size), resample=getattr(Image.Resampling, resample.upper())))
            out.append({"width": w, "height": h, "seed": seed, "processor": cfg.to_dict(),
                        "resized_sha256": sha256(resized), "pixel_values_sha256": sha256(pixels)})
    return out


def normalize_tables() -> list[dict[str, Any]]:
    out = []
    for rescale, mean, std in [(1 / 255, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
                               (1 / 255, (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
                               (0.00392156862745098, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))]:
        table = _lookup_table(float(rescale), tuple(mean), tuple(std))  # float32 [3, 256]
        out.append({"rescale_factor": rescale, "mean": list(mean), "std": list(std),
                    "table": [[float(v) for v in row] for row in table]})
    return out


# -- the tiled processors (SmolVLM / Idefics3 square tiles, InternVL aspect-ratio tiles) ------------------
TILE_CONFIGS = [  # tiny checkpoints' and published settings, one without splitting / cropping each
    ProcessorConfig(kind="square_tiles", image_size=64, patch_size=8, resample="lanczos",
                    options={"longest_edge": 256, "split": True}),
    ProcessorConfig(kind="square_tiles", image_size=512, patch_size=16, resample="lanczos",
                    options={"longest_edge": 2048, "split": True}),
    ProcessorConfig(kind="square_tiles", image_size=364, patch_size=14, resample="lanczos",
                    options={"longest_edge": 1456, "split": False}),
    ProcessorConfig(kind="aspect_tiles", image_size=112, patch_size=14, mean=(0.485, 0.456, 0.406),
                    std=(0.229, 0.224, 0.225), options={"min_tiles": 1, "max_tiles": 12, "crop": True}),
    ProcessorConfig(kind="aspect_tiles", image_size=448, patch_size=14, mean=(0.485, 0.456, 0.406),
                    std=(0.229, 0.224, 0.225), options={"min_tiles": 1, "max_tiles": 6, "crop": True}),
    ProcessorConfig(kind="aspect_tiles", image_size=448, patch_size=14, options={"max_tiles": 12, "crop": False}),
]
TILE_SIZES = [(1, 1), (2, 3), (1, 10000), (10000, 1), (64, 64), (65, 64), (112, 112), (113, 112), (224, 112),
              (500, 400), (640, 480), (480, 640), (1000, 300), (2049, 2048), (5000, 40), (257, 1025)]


def tile_records() -> list[dict[str, Any]]:
    """Plans (grid, chunks) for every size x config; pixels (float32 hash) where the input is small."""
    from edgevlm.runtime.images import plan_image, prepare_image

    out = []
    for index, (w, h) in enumerate(TILE_SIZES):
        image = pattern_image(w, h, index % 5)
        for cfg in TILE_CONFIGS:
            plan = plan_image(image, cfg, 1)
            record = {"width": w, "height": h, "seed": index % 5, "processor": cfg.to_dict(),
                      "grid": None if plan.grid is None else list(plan.grid), "n_chunks": plan.n_chunks}
            if w * h <= 1_000_000 and cfg.image_size * cfg.image_size * plan.n_chunks <= 2_000_000:
                pixels = prepare_image(image, cfg, plan).inputs["pixel_values"]  # float32 [n, 3, T, T]
                record["pixel_values_sha256"] = sha256(pixels)
            out.append(record)
    return out


def merged_plan_records() -> list[dict[str, Any]]:
    """Processor kind ``slice_merge`` (MiniCPM-V 4.6, both downsample modes): each chunk's feature rows from the
    image size alone (h*w / patches_per_token of its patch grid), the numbers the prompt layout spells out."""
    out = []
    for mode, (align, per_token) in {"16x": (56, 16), "4x": (28, 4)}.items():
        cfg = ProcessorConfig(kind="slice_merge", resize_align=align,
                              options={"patches_per_token": per_token, "downsample_mode": mode})
        for w, h in slicing_sizes()[::2] + [(700, 500), (1200, 400), (900, 1600)]:
            plan = plan_merged((w, h), cfg)
            out.append({"width": w, "height": h, "processor": cfg.to_dict(), "grid": plan.grid,
                        "overview_tokens": plan.overview_tokens, "slice_tokens": list(plan.slice_tokens)})
    return out


def slicing_records() -> dict[str, Any]:
    return {"slices": [slicing_record(c) for c in slicing_cases()], "fixed": fixed_records(),
            "normalize": normalize_tables(), "tiles": tile_records(), "merged_plans": merged_plan_records()}


# -- the vision graph's derived inputs ------------------------------------------------------------
def vision_input_records(out: Path) -> dict[str, Any]:
    """Every derived-input kind the runtime knows, through the same dispatcher the backends call
    (``derived_inputs``: graph input name -> kind, parameters from the manifest's ``vision.params``)."""
    spec = {"position_ids": "bucketed_position_ids", "key_pos": "sincos_2d_keys"}
    packed = {name: f"packed_{name}" for name in PACKED_TABLES}
    windows = {"window_index": "window_order_2x2", "merge_index": "window_order_2x2_after_merge"}
    assert set(spec.values()) | set(packed.values()) | set(windows.values()) == set(DERIVED), \
        "a derived-input kind without golden cases: add it here and in Java"
    records = []
    for index, (sizes, side, dim, pad) in enumerate([([[32, 32]], 70, 128, 0), ([[23, 45], [45, 23]], 70, 64, 0),
                                                      ([[1, 1], [7, 3]], 70, 128, 5), ([[10, 63]], 16, 32, 0),
                                                      ([[70, 70]], 70, 16, 0)]):
        tgt = np.asarray(sizes, dtype=np.int64)
        max_patches = int(max(h * w for h, w in sizes)) + pad
        params = {"position_table_side": side, "key_pos_dim": dim}
        arrays = derived_inputs(spec, tgt, max_patches, params)
        ids = arrays["position_ids"]  # int64 [B, max_patches]
        key_pos = arrays["key_pos"]  # float32 [B, max_patches, dim]
        records.append({"tgt_sizes": sizes, "params": params, "max_patches": max_patches, "derived_inputs": spec,
                        "position_ids": ids.tolist(), "key_pos": write_bin(out, f"key_pos_{index}.bin", key_pos)})
    # 2x2-window gather tables (MiniCPM-V 4.6's window merger and merger MLP): even grids, padded rows identity
    window_cases = []
    for sizes, pad in [([[4, 4]], 0), ([[8, 12], [4, 4]], 0), ([[32, 20]], 16), ([[4, 8], [8, 4]], 8)]:
        tgt = np.asarray(sizes, dtype=np.int64)
        max_patches = int(max(h * w for h, w in sizes)) + pad
        arrays = derived_inputs(windows, tgt, max_patches, {})
        window_cases.append({"tgt_sizes": sizes, "params": {}, "max_patches": max_patches, "derived_inputs": windows,
                             **{name: array.tolist() for name, array in arrays.items()}})
    return {"kinds": sorted(DERIVED), "cases": records, "window_cases": window_cases,
            "packed": packed_records(out, packed)}


def packed_records(out: Path, spec: dict[str, str]) -> list[dict[str, Any]]:
    """Packed-ViT tables (Qwen2-VL vision) for one or several images' grids, windowed or not, padded or not."""
    records = []
    for index, (grids, head_dim, window, pad) in enumerate([([[1, 8, 12]], 16, 4, 0), ([[1, 4, 4], [1, 2, 6]], 80, None, 0),
                                                             ([[1, 34, 46]], 80, 4, 36), ([[1, 2, 2]], 16, None, 12),
                                                             ([[2, 6, 10]], 64, 4, 0)]):
        params = {"head_dim": head_dim, "rope_theta": 10000.0, "merge_size": 2, "window_tokens": window}
        patches = sum(t * h * w for t, h, w in grids) + pad
        kinds = {n: k for n, k in spec.items() if window is not None or "window" not in n and "reverse" not in n}
        arrays = derived_inputs(kinds, np.asarray(grids, np.int64), patches, params)
        records.append({"grids": grids, "params": params, "patches": patches, "derived_inputs": kinds,
                        **{n: a.tolist() for n, a in arrays.items() if a.dtype == np.int64},
                        **{n: write_bin(out, f"packed_{n}_{index}.bin", a) for n, a in arrays.items()
                           if a.dtype == np.float32}})
    return records
