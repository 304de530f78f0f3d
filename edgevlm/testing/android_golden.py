"""Golden vectors for the Android demo's pure-JVM core (``android_demo/core``), written by the Python code.

    python -m edgevlm.testing.android_golden OUT_DIR [--bundle BUNDLE]

Everything the JVM core must reproduce exactly is computed here by the *current* Python
implementation, so a change in Python that the Java port does not follow fails the JVM tests
(``tests/test_android_golden.py`` regenerates these files and runs the JVM tests against them).

Files written to OUT_DIR (JSON; large float arrays go to ``*.bin``, raw little-endian):

* ``slicing.json``        MiniCPM-V slice plans + sha256 of the resized uint8 images and of the
                          float32 vision inputs, for many image sizes and settings; fixed-size resizes;
                          the normalisation lookup tables.
* ``vision_inputs.json``  the MiniCPM-V vision graph's derived inputs (navit position ids, key pos).
* ``prompts.json``        prompt texts (chat template + placeholders) for every family's layout.
* ``token_layouts.json``  feature positions / attention blocks for given token ids.
* ``sampler.json``        SplitMix64 draws and sampled token sequences for fixed logits and seeds.
* ``manifests.json``      manifest-reader cases (valid and damaged bundles) with Python's error text.
* ``generation.json``     a recorded two-turn chat on a tiny exported bundle: every backend call
                          (inputs fed, logits returned), the tokenizer's text -> ids, and the tokens.

The test images are a formula (``test_pattern``) that the Java tests compute identically, so no
image files are stored.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

import numpy as np
from PIL import Image

from edgevlm.errors import EdgeVLMError
from edgevlm.processing.config import ChatTemplate, ImageLayout, ProcessorConfig
from edgevlm.processing.normalize import _lookup_table
from edgevlm.processing.preprocess import preprocess_fixed, preprocess_slices
from edgevlm.processing.prompt import IMAGE, PromptText, build_prompt, layout_tokens
from edgevlm.processing.slicing import plan_slices, resize_for_plan
from edgevlm.runtime.generate import penalize_repetition
from edgevlm.runtime.sampling import Sampler, SamplingParams, SplitMix64
from edgevlm.processing.vision_inputs import bucketed_position_ids, sincos_2d_keys


# -- helpers ------------------------------------------------------------------------------------
def sha256(array: np.ndarray) -> str:
    """sha256 of the array's bytes, C order, little-endian (what the Java side hashes)."""
    return hashlib.sha256(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()).hexdigest()


def write_bin(out: Path, name: str, array: np.ndarray) -> dict[str, Any]:
    """Raw little-endian file + a reference {file, dtype, shape} for the JSON."""
    array = np.ascontiguousarray(array)
    (out / name).write_bytes(array.astype(array.dtype.newbyteorder("<")).tobytes())
    return {"file": name, "dtype": str(array.dtype), "shape": list(array.shape)}


def write_json(out: Path, name: str, data: Any) -> None:
    (out / name).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def test_pattern(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Deterministic uint8 [h, w, 3]: a ramp per channel plus 7-bit hash noise (all arithmetic mod 2**32).

    channel c: ramp_c + ((x*73856093 ^ y*19349663 ^ (3*seed + c)*83492791) * 2654435761 mod 2**32) >> 25,
    ramp_0 = x*127 // max(w-1, 1), ramp_1 = y*127 // max(h-1, 1), ramp_2 = 127 * ((x//37 + y//29) & 1).
    The Java tests compute the same formula (PatternImage.java).
    """
    y = np.arange(height, dtype=np.uint32)[:, None]  # [h, 1]
    x = np.arange(width, dtype=np.uint32)[None, :]  # [1, w]
    ramps = [x * 127 // max(width - 1, 1) + 0 * y, y * 127 // max(height - 1, 1) + 0 * x,
             ((x // 37 + y // 29) & 1) * 127]
    out = np.empty((height, width, 3), dtype=np.uint8)
    for c in range(3):
        salt = np.uint32(((3 * seed + c) * 83492791) % 2**32)
        hsh = ((x * np.uint32(73856093)) ^ (y * np.uint32(19349663)) ^ salt) * np.uint32(2654435761)  # [h, w]
        out[:, :, c] = (ramps[c] + (hsh >> np.uint32(25))).astype(np.uint8)
    return out


@lru_cache(maxsize=4)
def pattern_image(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(test_pattern(width, height, seed), "RGB")


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


def vision_input_records(out: Path) -> list[dict[str, Any]]:
    records = []
    for index, (sizes, per_side, dim, pad) in enumerate([([[32, 32]], 70, 128, 0), ([[23, 45], [45, 23]], 70, 64, 0),
                                                          ([[1, 1], [7, 3]], 70, 128, 5), ([[10, 63]], 16, 32, 0),
                                                          ([[70, 70]], 70, 16, 0)]):
        tgt = np.asarray(sizes, dtype=np.int64)
        max_patches = int(max(h * w for h, w in sizes)) + pad
        ids = bucketed_position_ids(tgt, max_patches, per_side)  # int64 [B, max_patches]
        key_pos = sincos_2d_keys(tgt, dim, max_patches)  # float32 [B, max_patches, dim]
        records.append({"tgt_sizes": sizes, "patches_per_side": per_side, "embed_dim": dim, "max_patches": max_patches,
                        "position_ids": ids.tolist(), "key_pos": write_bin(out, f"key_pos_{index}.bin", key_pos)})
    return records


# -- prompts and token layouts ------------------------------------------------------------------
def family_specs() -> dict[str, dict[str, Any]]:
    """name -> {processor, layout, chat_template} dicts, from the family code itself."""
    from edgevlm.families import FAMILIES
    from edgevlm.families.gemma3.tiny import random_config as gemma3_config
    from edgevlm.families.minicpmv.tiny import random_config as minicpmv_config
    from edgevlm.families.paligemma.tiny import random_config as paligemma_config

    minicpmv, paligemma, gemma3 = FAMILIES["minicpmv"], FAMILIES["paligemma"], FAMILIES["gemma3"]
    specs = {f"minicpmv-{v}": minicpmv.bundle_spec(minicpmv_config(v, 600, {})) for v in (2.5, 2.6, 4.5)}
    specs["paligemma"] = paligemma.bundle_spec(paligemma_config(1, 600, 5))
    specs["gemma3"] = gemma3.bundle_spec(gemma3_config(600, {"boi": 1, "eoi": 2, "image": 3}))
    return {name: {"processor": s.processor.to_dict(), "layout": s.layout.to_dict(),
                   "chat_template": s.chat_template.to_dict()} for name, s in specs.items()}


def _messages_json(messages: Any) -> Any:
    """IMAGE parts become {"image": true} in JSON."""
    if isinstance(messages, str):
        return messages
    out = []
    for m in messages:
        content = m["content"]
        if not isinstance(content, str):
            content = [{"image": True} if part is IMAGE else part for part in content]
        out.append({"role": m["role"], "content": content})
    return out


def prompt_cases(marker: str) -> list[dict[str, Any]]:
    nbsp = "\u00a0"
    return [
        {"messages": "What is in the picture?", "grids": [None]},
        {"messages": "Describe both.", "grids": [[2, 1], [3, 3]]},
        {"messages": "  padded text \n", "grids": [[1, 4]]},
        {"messages": f"{nbsp}nbsp and tabs\t", "grids": []},
        {"messages": f"Look: {marker} and then {marker} ok", "grids": [None, [2, 2]]},
        {"messages": "No image here.", "grids": []},
        {"messages": [{"role": "user", "content": [IMAGE, " What is it? ", IMAGE]}], "grids": [[3, 1], None]},
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                      {"role": "assistant", "content": " Hello! "}, {"role": "user", "content": [IMAGE, "And this?"]}],
         "grids": [[1, 2]]},
        {"messages": "Explain.", "grids": [[4, 2]], "system": "You are a vision expert."},
        {"messages": "Caption.", "grids": [None], "add_generation_prompt": False},
        {"messages": "caption en", "grids": [None], "suffix": "a cat"},
        {"messages": f"{marker}{marker}", "grids": [None]},  # error: 2 markers, 1 image
        {"messages": [{"role": "assistant", "content": "only me"}], "grids": [None]},  # error: no user turn
        {"messages": [{"role": "robot", "content": "beep"}], "grids": []},  # error: unknown role
    ]


def followup_cases() -> list[dict[str, Any]]:
    return [{"text": "And the colour?", "grids": []}, {"text": "  Compare with this one. ", "grids": [[2, 1]]},
            {"text": "Two more", "grids": [None, None]}]


def prompt_records() -> dict[str, Any]:
    from edgevlm.runtime.vlm import Chat

    records = []
    for name, spec in family_specs().items():
        layout, template = ImageLayout.from_dict(spec["layout"]), ChatTemplate.from_dict(spec["chat_template"])
        for case in prompt_cases(layout.marker):
            record = {"family": name, **case, "messages": _messages_json(case["messages"])}
            try:
                prompt = build_prompt(case["messages"], case["grids"], layout, template, system=case.get("system"),
                                      add_generation_prompt=case.get("add_generation_prompt", True),
                                      suffix=case.get("suffix"))
                record.update(text=prompt.text, suffix_text=prompt.suffix)
            except EdgeVLMError as exc:
                record.update(error=type(exc).__name__, message=str(exc))
            records.append(record)
        # a follow-up turn of a chat (vlm.Chat._turn_text with turns > 0)
        chat = Chat(SimpleNamespace(layout=layout, template=template), None)
        chat.turns = 1
        for case in followup_cases():
            records.append({"family": name, "followup": True, **case, "text_out": chat._turn_text(case["text"], case["grids"])})
    return {"specs": family_specs(), "cases": records}


class _IdsTokenizer:
    """Stands in for the tokenizer in ``layout_tokens``: the token ids are the golden input here."""

    def __init__(self, texts: dict[str, list[int]], feature_id: int):
        self.texts, self.feature_id = texts, feature_id

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self.texts[text], dtype=np.int64)

    def token_to_id(self, token: str) -> int:
        return self.feature_id


def token_layout_records(tokenizer_json: Path | None) -> list[dict[str, Any]]:
    f = 9  # the feature token id in the synthetic cases
    synthetic = [
        ([1, 2, f, f, f, f, 3, 4], [], [2]),
        ([1, f, f, 5, f, f, 6, f, f, 7], [], [1, 2]),
        ([f, f, f, f, 8, 8], [11, 12, 13], [2]),
        ([f, f, 1, 2, 3], [4], []),
        ([1, 2, 3], [], []),
        ([f, f, f, 1, f], [], [2]),  # two runs of feature tokens for one image: two blocks
        ([f, f, f], [], [1]),  # error: 3 feature tokens, 1 chunk of 2
    ]
    records = []
    for attention in ("causal", "prefix", "image_blocks"):
        layout = ImageLayout(feature_token="<f>", tokens_per_chunk=2, attention=attention)
        for prefix, suffix, chunks in synthetic:
            tok = _IdsTokenizer({"P": prefix, "S": suffix}, f)
            record = {"attention": attention, "tokens_per_chunk": 2, "feature_id": f, "prefix_ids": prefix,
                      "suffix_ids": suffix, "chunks_per_image": chunks}
            try:
                result = layout_tokens(tok, PromptText("P", "S" if suffix else ""), layout, chunks)
                record.update(input_ids=result.input_ids.tolist(), image_positions=result.image_positions.tolist(),
                              token_type_ids=result.token_type_ids.tolist(), block_ids=result.block_ids.tolist(),
                              prefix_length=result.prefix_length)
            except EdgeVLMError as exc:
                record.update(error=type(exc).__name__, message=str(exc))
            records.append(record)
    if tokenizer_json is not None:
        # real ids: the MiniCPM-V 2.6 tiny tokenizer over a real prompt (the app tokenizes with the same file)
        from edgevlm.processing.tokenizer import Tokenizer

        tokenizer = Tokenizer.from_file(tokenizer_json)
        spec = family_specs()["minicpmv-2.6"]
        layout, template = ImageLayout.from_dict(spec["layout"]), ChatTemplate.from_dict(spec["chat_template"])
        prompt = build_prompt("Where is the cat?", [[2, 1], None], layout, template)
        result = layout_tokens(tokenizer, prompt, layout, [3, 1])
        records.append({"attention": layout.attention, "tokens_per_chunk": layout.tokens_per_chunk,
                        "feature_id": tokenizer.token_to_id(layout.feature_token), "text": prompt.text,
                        "prefix_ids": result.input_ids.tolist(), "suffix_ids": [], "chunks_per_image": [3, 1],
                        "input_ids": result.input_ids.tolist(), "image_positions": result.image_positions.tolist(),
                        "token_type_ids": result.token_type_ids.tolist(), "block_ids": result.block_ids.tolist(),
                        "prefix_length": result.prefix_length})
    return records


# -- sampler ------------------------------------------------------------------------------------
def sampler_records(out: Path) -> dict[str, Any]:
    draws = []
    for seed in (0, 1, 42, 2**63 + 5, 2**64 - 1):
        rng = SplitMix64(seed)
        draws.append({"seed": str(seed), "u64": [str(rng.next_u64()) for _ in range(4)],
                      "uniform": [rng.uniform() for _ in range(4)]})
    settings = [
        {"temperature": 0.0},
        {"temperature": 0.0, "repetition_penalty": 1.3},
        {"temperature": 1.0},
        {"temperature": 0.7, "top_k": 100, "top_p": 0.8, "repetition_penalty": 1.05},
        {"temperature": 1.5, "top_k": 5},
        {"temperature": 0.9, "top_p": 0.5},
        {"temperature": 0.3, "top_p": 0.95, "repetition_penalty": 0.8},
        {"temperature": 2.0, "top_k": 1},
    ]
    cases, rng = [], np.random.RandomState(7)
    for index, (vocab, ties) in enumerate([(7, False), (100, True), (1000, False), (32000, False), (151, True)]):
        steps = 10
        logits = (rng.standard_normal((steps, vocab)) * 3).astype(np.float32)  # [steps, V]
        if ties:  # coarse values: many exact ties, so the stable order (lower id first) matters
            logits = np.round(logits).astype(np.float32)
        ref = write_bin(out, f"sampler_logits_{index}.bin", logits)
        for s_index, setting in enumerate(settings):
            seed = 1000 * index + s_index
            params = SamplingParams(seed=seed, **setting)
            sampler = Sampler(params)
            history = [int(v) for v in rng.randint(0, vocab, 5)]
            start = list(history)
            tokens = []
            processors = [penalize_repetition(params.repetition_penalty)] if params.repetition_penalty != 1.0 else []
            for step in range(steps):
                scores = logits[step].astype(np.float64)
                for process in processors:
                    process(scores, history)
                token = sampler(scores)
                tokens.append(token)
                history.append(token)
            cases.append({"logits": ref, "params": {**setting, "seed": seed}, "history": start, "tokens": tokens})
    return {"splitmix64": draws, "cases": cases}


# -- manifests ----------------------------------------------------------------------------------
def manifest_records(out: Path, bundle: Path) -> list[dict[str, Any]]:
    """A small valid bundle (the real manifest over stand-in part files) and damaged variants of it."""
    from edgevlm.manifest import read_manifest, sha256_of

    root = out / "manifests"
    real = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))

    def make(name: str, mutate=None, files_mutate=None) -> Path:
        d = root / name
        d.mkdir(parents=True)
        data = json.loads(json.dumps(real))
        files = {}
        for rel in real["files"]:
            (d / rel).write_bytes(f"stand-in for {rel}\n".encode())
            files[rel] = {"sha256": sha256_of(d / rel), "size": (d / rel).stat().st_size}
        data["files"] = files
        if files_mutate:
            files_mutate(d)
        if mutate:
            mutate(data)
        (d / "manifest.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
        return d

    def setter(key, value):
        return lambda data: data.__setitem__(key, value)

    def deleter(key):
        return lambda data: data.pop(key)

    def part_file(data):
        data["parts"]["decoder"]["file"] = "elsewhere.onnx"

    def bad_part(data):
        data["parts"]["vision"]["weights"] = "x"

    def truncate(d):
        (d / "decoder.onnx").write_bytes(b"short")

    def tamper(d):
        path = d / "vision.onnx"
        raw = bytearray(path.read_bytes())
        raw[0] ^= 1
        path.write_bytes(bytes(raw))

    def layout_setter(key, value):
        return lambda data: data["layout"].__setitem__(key, value)

    cases = [("valid", None, None), ("schema_3", setter("schema_version", 3), None),
             ("schema_string", setter("schema_version", "1"), None), ("schema_missing", deleter("schema_version"), None),
             ("lacks_layout", deleter("layout"), None), ("lacks_two", lambda d: (d.pop("layout"), d.pop("text")), None),
             ("unknown_field", setter("colour", "blue"), None), ("bad_format", setter("format", "tflite"), None),
             ("bad_attention", layout_setter("attention", "sliding"), None), ("part_file_unlisted", part_file, None),
             ("part_malformed", bad_part, None), ("file_missing", None, lambda d: (d / "embedding.onnx").unlink()),
             ("file_size", None, truncate), ("file_sha256", None, tamper), ("not_object", lambda d: d.clear(), None)]
    records = []
    for name, mutate, files_mutate in cases:
        d = make(name, mutate, files_mutate)
        if name == "not_object":
            (d / "manifest.json").write_text("[1, 2]", encoding="utf-8")
        records.append(_read_record(name, d, read_manifest))
    extra = {"no_dir": root / "does-not-exist", "no_manifest": root / "empty"}
    (root / "empty").mkdir()
    bad_json = root / "bad_json"
    bad_json.mkdir()
    (bad_json / "manifest.json").write_text("{\"format\": ", encoding="utf-8")
    extra["bad_json"] = bad_json
    for name, d in extra.items():
        records.append(_read_record(name, d, read_manifest))
    # the real exported bundle, verified (sha256 of every part)
    records.append(_read_record("real_bundle", bundle, read_manifest))
    return records


def _read_record(name: str, d: Path, read_manifest) -> dict[str, Any]:
    record: dict[str, Any] = {"name": name, "dir": str(d)}
    try:
        m = read_manifest(d, verify=True)
        record.update(ok=True, format=m.format, family=m.family, attention=m.attention, parts=sorted(m.parts),
                      files=sorted(m.files), max_context=m.text.max_context,
                      kv=m.parts["decoder"].binding["kv"])
    except EdgeVLMError as exc:
        # a message that quotes a library exception (JSON decoder, dataclass) is compared up to that quote
        message = str(exc)
        cut = message.find(" (") if name in ("bad_json", "part_malformed") else -1
        record.update(ok=False, error=type(exc).__name__, message=message if cut < 0 else message[:cut],
                      match="exact" if cut < 0 else "prefix")
    return record


# -- a recorded generation ----------------------------------------------------------------------
class _Recorder:
    """Wraps a Backend and records every call: what it was fed and what it returned."""

    def __init__(self, backend, out: Path):
        self._backend, self._out, self.calls = backend, out, []

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def _bin(self, array: np.ndarray, what: str) -> dict[str, Any]:
        return write_bin(self._out, f"gen_{len(self.calls):03d}_{what}.bin", array)

    def encode_images(self, inputs):
        features = self._backend.encode_images(inputs)  # [n_chunks, tokens, hidden]
        self.calls.append({"op": "encode_images", "pixel_values_shape": list(inputs["pixel_values"].shape),
                           "pixel_values_sha256": sha256(np.asarray(inputs["pixel_values"], np.float32)),
                           "tgt_sizes": np.asarray(inputs.get("tgt_sizes", np.zeros((0, 2)))).tolist(),
                           "features": self._bin(np.asarray(features, np.float32), "features")})
        return features

    def forward(self, input_ids, features=None, block_ids=None, all_logits=False):
        logits = self._backend.forward(input_ids, features, block_ids, all_logits)
        call = {"op": "forward", "ids": np.asarray(input_ids).tolist(),
                "block_ids": None if block_ids is None else np.asarray(block_ids).tolist(),
                "features": None if features is None else self._bin(np.asarray(features, np.float32), "rows")}
        call["logits"] = self._bin(np.asarray(logits, np.float32), "logits")
        self.calls.append(call)
        return logits

    def rewind(self, n_keep):
        self.calls.append({"op": "rewind", "n_keep": int(n_keep)})
        return self._backend.rewind(n_keep)


class _TokenizerRecorder:
    def __init__(self, tokenizer):
        self._tokenizer, self.encoded = tokenizer, []

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)

    def encode(self, text):
        ids = self._tokenizer.encode(text)
        self.encoded.append({"text": text, "ids": ids.tolist()})
        return ids


GENERATION_TURNS = [
    {"text": "What is in the picture?", "images": [{"width": 640, "height": 480, "seed": 3}], "max_new_tokens": 12,
     "temperature": 0.8, "top_k": 50, "top_p": 0.9, "repetition_penalty": 1.1, "seed": 1234},
    {"text": "And what colour is it?", "images": [], "max_new_tokens": 8, "temperature": 0.0,
     "repetition_penalty": 1.2, "seed": 5},
    {"text": "Now this one.", "images": [{"width": 300, "height": 700, "seed": 1}], "max_new_tokens": 6,
     "temperature": 1.0, "top_k": 0, "top_p": 1.0, "repetition_penalty": 1.0, "seed": 77},
]


def generation_record(out: Path, bundle: Path) -> dict[str, Any]:
    import edgevlm

    vlm = edgevlm.load(str(bundle))
    recorder = _Recorder(vlm.backend, out)
    tokenizer = _TokenizerRecorder(vlm.tokenizer)
    vlm.backend, vlm.tokenizer = recorder, tokenizer
    chat = vlm.chat(system=None)
    turns = []
    for turn in GENERATION_TURNS:
        first_call, first_text = len(recorder.calls), len(tokenizer.encoded)
        images = [pattern_image(i["width"], i["height"], i["seed"]) for i in turn["images"]]
        options = {k: v for k, v in turn.items() if k not in ("text", "images")}
        result = chat.send(turn["text"], images, **options)
        turns.append({**turn, "calls": recorder.calls[first_call:], "encoded": tokenizer.encoded[first_text:],
                      "tokens": result.token_ids, "finish_reason": result.finish_reason,
                      "pending": list(chat.pending)})
    layout, template = vlm.layout, vlm.template
    tokens = [layout.feature_token, *template.stop_strings]
    vlm.close()
    return {"bundle": str(bundle), "max_context": int(recorder.max_context),
            "token_to_id": {t: vlm.tokenizer.token_to_id(t) for t in tokens},
            "stop_ids": sorted(vlm.stop_ids), "turns": turns}


def export_tiny_bundle(work: Path) -> Path:
    """A tiny MiniCPM-V 2.6 ONNX bundle (random weights; ~30 s on 2 cores)."""
    import edgevlm
    from edgevlm.testing.tiny import make_tiny

    ckpt = make_tiny("minicpmv-2.6", work / "ckpt")
    edgevlm.export(str(ckpt), str(work / "bundle"), format="onnx", max_context=512, validate=False, progress=None)
    return work / "bundle"


def write_golden(out: str | Path, bundle: str | Path | None = None) -> Path:
    """Write every golden file into ``out`` (created); export a tiny bundle when ``bundle`` is None."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bundle = Path(bundle) if bundle is not None else export_tiny_bundle(out / "tiny")
    write_json(out, "slicing.json", {"slices": [slicing_record(c) for c in slicing_cases()],
                                     "fixed": fixed_records(), "normalize": normalize_tables()})
    write_json(out, "vision_inputs.json", {"cases": vision_input_records(out)})
    write_json(out, "prompts.json", prompt_records())
    write_json(out, "token_layouts.json", {"cases": token_layout_records(bundle / "tokenizer.json")})
    write_json(out, "sampler.json", sampler_records(out))
    if (out / "manifests").exists():
        shutil.rmtree(out / "manifests")
    write_json(out, "manifests.json", {"cases": manifest_records(out, bundle)})
    write_json(out, "generation.json", generation_record(out, bundle))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="directory for the golden files")
    parser.add_argument("--bundle", help="an exported MiniCPM-V ONNX bundle (default: export a tiny one)")
    args = parser.parse_args(argv)
    write_golden(args.out, args.bundle)
    print(f"golden vectors written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
