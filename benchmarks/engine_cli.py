"""The command line every per-engine benchmark script shares: ENGINE MODEL [--runs] [--threads] [--json].

run_all.py starts each engine in a process of its own through this interface (clean peak RSS, no two
runtimes in one process), so the scripts must agree on it.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable

import models


def engine_main(description: str, engines: Iterable[str], run_engine: Callable[..., dict[str, Any]],
                runs: int = 3, steps: int | None = None) -> None:
    """Parse the shared arguments, run one engine on one model, print the JSON (and write it with --json).
    ``steps``: the script also takes --steps (decode steps per run), passed after --runs."""
    ap = argparse.ArgumentParser(description=description.split("\n")[0])
    ap.add_argument("engine", choices=list(engines))
    ap.add_argument("model", choices=list(models.MODELS))
    ap.add_argument("--runs", type=int, default=runs)
    if steps is not None:
        ap.add_argument("--steps", type=int, default=steps)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="also write the result here")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    counts = (args.runs, args.steps) if steps is not None else (args.runs,)
    text = json.dumps(run_engine(args.engine, args.model, *counts, args.threads), indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
