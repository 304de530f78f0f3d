"""Golden vectors for the Android demo's pure-JVM core (``android_demo/core``), written by the Python code.

    python -m edgevlm.testing.android_golden OUT_DIR [--bundle BUNDLE]

Everything the JVM core must reproduce exactly is computed here by the *current* Python
implementation, so a change in Python that the Java port does not follow fails the JVM tests
(``tests/test_android_golden.py`` regenerates these files and runs the JVM tests against them).

Files written to OUT_DIR (JSON; large float arrays go to ``*.bin``, raw little-endian), by module:

* anyres.py        ``anyres.json``: the "square" and "anyres" processor kinds: plans, token counts and
                   float32 pixel hashes at the tiny LLaVA settings, plans at the published ones.
* images.py        ``slicing.json``: LLaVA-UHD slice plans + sha256 of the resized uint8 images and of
                   the float32 vision inputs, for many image sizes and settings; fixed-size resizes; the
                   normalisation lookup tables. ``vision_inputs.json``: the vision graph's derived
                   inputs of every kind (processing/vision_inputs.py).
* native_resolution.py ``native_resolution.json``: Qwen2-VL plans (grid, image tokens, M-RoPE grid) or
                   errors, resized / float32 hashes, over sizes and per-request pixel budgets; prompt texts
                   whose placeholder runs come from the plans.
* prompts.py       ``prompts.json``: prompt texts (chat template + placeholders) for every family's
                   layout, opening and follow-up turns, and prompts that must fail.
* token_layouts.py ``token_layouts.json``: feature positions / token types / attention blocks for given
                   token ids, for every attention kind.
* sampler.py       ``sampler.json``: SplitMix64 draws and tokens sampled through the logits processors
                   and the sampler for fixed logits and seeds.
* manifests.py     ``manifests.json`` + ``manifests/``: bundle-reader cases (valid, damaged, paths
                   leaving the bundle) with Python's verdict and error text.
* generation.py    ``generation.json``: a recorded three-turn chat on a tiny exported bundle: every
                   backend call (inputs fed, logits returned), the tokenizer's text -> ids, the tokens.

The test images are a formula (``common.test_pattern``) that the Java tests compute identically, so
no image files are stored.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .anyres import anyres_records
from .common import write_json
from .generation import export_tiny_bundle, generation_record
from .images import slicing_records, vision_input_records
from .manifests import manifest_records
from .native_resolution import native_resolution_records
from .prompts import prompt_records
from .sampler import sampler_records
from .token_layouts import token_layout_records

FILES = ("slicing.json", "anyres.json", "vision_inputs.json", "native_resolution.json", "prompts.json",
         "token_layouts.json", "sampler.json",
         "manifests.json", "generation.json")


def write_golden(out: str | Path, bundle: str | Path | None = None) -> Path:
    """Write every golden file into ``out`` (created); export a tiny bundle when ``bundle`` is None.

    ``bundle``: an exported MiniCPM-V 2.6-class ONNX bundle (the generation trace and the token-layout
    case with a real tokenizer use it; the manifest cases copy its manifest)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bundle = Path(bundle) if bundle is not None else export_tiny_bundle(out / "tiny")
    write_json(out, "slicing.json", slicing_records())
    write_json(out, "anyres.json", anyres_records())
    write_json(out, "vision_inputs.json", vision_input_records(out))
    write_json(out, "native_resolution.json", native_resolution_records())
    write_json(out, "prompts.json", prompt_records())
    write_json(out, "token_layouts.json", {"cases": token_layout_records(bundle / "tokenizer.json")})
    write_json(out, "sampler.json", sampler_records(out))
    if (out / "manifests").exists():
        shutil.rmtree(out / "manifests")
    write_json(out, "manifests.json", {"cases": manifest_records(out, bundle)})
    write_json(out, "generation.json", generation_record(out, bundle))
    return out


__all__ = ["FILES", "write_golden"]
