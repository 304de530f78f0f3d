"""``edgevlm bench``: time each stage of one request on a bundle, medians and min–max over runs."""

from __future__ import annotations

import platform
import statistics
from pathlib import Path
from typing import Any

STAGES = ("slicing_ms", "vision_ms", "prefill_ms", "prefill_tokens_per_s", "time_to_first_token_ms",
          "decode_tokens_per_s", "peak_rss_mb")


def bench_bundle(bundle: str | Path, image: str | Path | None = None, prompt: str = "Describe the image.",
                 runs: int = 3, max_tokens: int = 64, device: str = "cpu") -> dict[str, Any]:
    import os

    import edgevlm
    from edgevlm.processing.sample_image import sample_image

    vlm = edgevlm.load(str(bundle), device=device)
    picture = image if image is not None else sample_image()
    samples = []
    for run in range(runs + 1):  # run 0 warms up the sessions and is not counted
        vlm.vision_cache = type(vlm.vision_cache)(vlm.vision_cache.max_bytes)  # time the encoder every run
        result = vlm.generate(prompt, [picture], max_new_tokens=max_tokens, temperature=0.0)
        if run:
            samples.append(result.stats.to_dict())
    files = vlm.manifest.files
    return {
        "bundle": str(bundle), "format": vlm.manifest.format, "family": vlm.manifest.family,
        "bundle_mb": round(sum(f["size"] for f in files.values()) / 1e6, 1),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count()},
        "runs": runs, "prompt_tokens": samples[0]["prompt_tokens"], "decode_tokens": samples[0]["decode_tokens"],
        "median": {k: round(statistics.median(s[k] for s in samples), 2) for k in STAGES},
        "min": {k: min(s[k] for s in samples) for k in STAGES},
        "max": {k: max(s[k] for s in samples) for k in STAGES},
    }
