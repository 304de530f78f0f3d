"""A/B of runtime policies, each measured in a process of its own (clean peak RSS: onnxruntime's arena
keeps its largest allocation for the life of the session), interleaved over rounds so a drifting machine
load hits every policy alike. Shared by ab_vision_batch.py and ab_prefill_chunk.py.

A script calls ``main_or_child(measure, policies, ...)``: with ``--policy P`` (the child) it prints
``measure(args, P)`` as JSON (peak RSS: compare_text.peak_rss_mb, this process image's own); without, it runs every policy ``--runs`` times as children and writes
DIR/NAME.json and .md: medians, min-max and ratios to the ``base`` policy, with the CPU named.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import cpu_info
import models

RESULTS = Path(__file__).resolve().parent / "results"


def main_or_child(script: str, description: str, policies: dict[str, Any], base: str, figures: dict[str, str],
                  measure: Callable[[argparse.Namespace, str], dict[str, Any]], name: str,
                  caption: Callable[[argparse.Namespace, dict[str, Any]], str],
                  extra_args: Callable[[Any], None] = lambda ap: None,
                  default_model: str = "smolvlm-256m", default_recipe: str = "fp32") -> None:
    """``figures``: result key -> column title (medians; the first is the one min-max is shown for)."""
    ap = argparse.ArgumentParser(description=description.split("\n")[0])
    ap.add_argument("--model", default=default_model, choices=list(models.MODELS))
    ap.add_argument("--recipe", default=default_recipe)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--policy", choices=list(policies), help=argparse.SUPPRESS)  # a child's one measurement
    extra_args(ap)
    args = ap.parse_args()
    if args.policy:
        print(json.dumps({"policy": args.policy, **measure(args, args.policy)}))
        return
    models.onnx_bundle(args.model, args.recipe)  # built (cached) before anything is timed
    forwarded = sys.argv[1:]
    rows: dict[str, list[dict]] = {p: [] for p in policies}
    for round_ in range(args.runs):
        for policy in policies:
            out = subprocess.run([sys.executable, script, *forwarded, "--policy", policy],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(f"{policy}: the measuring process failed:\n{out.stderr.strip()[-2000:]}")
            rows[policy].append(json.loads(out.stdout.strip().splitlines()[-1]))
            models.log(f"round {round_ + 1} {policy}: {rows[policy][-1]}")
    cpu = cpu_info.cpu()
    medians = {p: {k: statistics.median(x[k] for x in r) for k in figures} for p, r in rows.items()}
    first = next(iter(figures))
    lines = [f"{caption(args, rows[base][0])}; {cpu['model']} ({cpu['isa']}), {args.threads} threads, median of "
             f"{args.runs} processes per policy (interleaved), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
             "", "| policy | " + " | ".join(f"{t} | vs {base}" for t in figures.values()) + " |",
             "|---|" + "---:|---:|" * len(figures)]
    for p, r in rows.items():
        cells = []
        for k in figures:
            spread = f" ({min(x[k] for x in r):.0f}–{max(x[k] for x in r):.0f})" if k == first else ""
            cells.append(f"{medians[p][k]:.0f}{spread} | {medians[p][k] / medians[base][k]:.2f}×")
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps({"model": args.model, "recipe": args.recipe, "cpu": cpu,
                                                  "threads": args.threads, "rows": rows, "medians": medians},
                                                 indent=2) + "\n")
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
