"""Prompt-lookup speculative decoding (``prompt_lookup=N``) against plain greedy decoding, interleaved.

    python benchmarks/bench_speculative.py [ENGINE] [MODEL] [--draft 8] [--runs 3] [--max-tokens 128]
                                           [--threads 2] [--json OUT]

Default: our w4 ONNX bundle of the real Gemma 3 270M (benchmarks/models.py; a random-weight model's
answers, and so its acceptance rate, mean nothing). Two prompt sets, reported as separate rows so that
nobody mistakes either for the base decode speed:
- "repeats its input": answers that copy text from the conversation (copying a passage, a follow-up
  that asks for the previous answer again, a list reformatted);
- "does not repeat": open-ended answers (a story, an explanation).
Each prompt runs plain and with prompt lookup alternately, ``runs`` times, in one process (load from other
processes hits both alike). Decode time is from the first token to the last (the prefill is the same for
both), wall and process CPU time; medians over runs of each set's summed decode time. Also: drafted and
accepted tokens, tokens per decoder forward, and whether both gave the same token ids (they must).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import models  # noqa: E402

PASSAGE = ("The old lighthouse keeper walked along the rocky shore every morning, counting the boats that "
           "returned from the night's fishing and writing their names in a worn leather book. When the fog came "
           "in, he lit the great lamp and rang the bell until the last boat was safely home.")
# set -> prompts; a prompt is (turns, raw): every turn but the last is context (answered, not measured), the
# last is measured; raw = a completion of the text (no chat template): the real Gemma 3 270M behind the
# benchmark bundle is a small model that echoes chat questions, so open-ended answers are completions.
PROMPT_SETS: dict[str, list[tuple[list[str], bool]]] = {
    "repeats its input": [
        ([f"Copy the following text exactly, without changing a word:\n\n{PASSAGE}"], False),
        (["Write three sentences about a lighthouse keeper.", "Repeat your previous answer word for word."], False),
        ([f"Text: {PASSAGE}\nThe same text, copied exactly: "], True),
    ],
    "does not repeat": [
        (["Once upon a time, in a small village by the sea, there lived"], True),
        (["The history of the printing press begins in"], True),
        (["Photosynthesis is the process by which green plants"], True),
    ],
}


def _turn(vlm: Any, prompt: tuple[list[str], bool], max_tokens: int, lookup: int) -> dict[str, Any]:
    """Answer the context turns, then measure the last: decode wall/CPU s, ids, drafted/accepted."""
    turns, raw = prompt
    chat = vlm.chat()
    for text in turns[:-1]:
        chat.send(text, max_new_tokens=max_tokens, prompt_lookup=lookup, raw=raw)
    wall0 = cpu0 = None
    for _ in chat.stream(turns[-1], max_new_tokens=max_tokens, prompt_lookup=lookup, raw=raw):
        if wall0 is None:  # the first token: the prefill is behind us
            wall0, cpu0 = time.perf_counter(), time.process_time()
    wall, cpu = time.perf_counter() - (wall0 or 0), time.process_time() - (cpu0 or 0)
    r = chat.last_result
    return {"wall": wall, "cpu": cpu, "ids": r.token_ids, "drafted": r.stats.draft_tokens,
            "accepted": r.stats.accepted_draft_tokens}


def _summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2),
            "max": round(max(values), 2), "n": len(values)}


def run(engine: str, model: str, draft: int, runs: int, max_tokens: int, threads: int,
        bundle: str | None = None) -> dict[str, Any]:
    import edgevlm

    vlm = edgevlm.load(bundle or str(models.ENGINE_BUILDS[engine](model)), threads=threads)
    engine = Path(bundle).name if bundle else engine
    _turn(vlm, PROMPT_SETS["does not repeat"][0], 8, draft)  # warm-up: multi-row shapes, arenas
    rows = []
    for name, prompts in PROMPT_SETS.items():
        plain_t, fast_t, plain_c, fast_c = [], [], [], []
        identical, drafted, accepted, tokens, diverged = 0, 0, 0, 0, []
        for run_i in range(runs):
            sums = {"plain": [0.0, 0.0, 0], "fast": [0.0, 0.0, 0]}
            for prompt in prompts:
                order = ("plain", "fast") if run_i % 2 == 0 else ("fast", "plain")
                got = {kind: _turn(vlm, prompt, max_tokens, draft if kind == "fast" else 0) for kind in order}
                for kind, g in got.items():
                    sums[kind][0] += g["wall"]
                    sums[kind][1] += g["cpu"]
                    sums[kind][2] += len(g["ids"]) - 1  # tokens after the first
                same = got["plain"]["ids"] == got["fast"]["ids"]
                identical += same
                if not same and run_i == 0:
                    first = next((i for i, (a, b) in enumerate(zip(got["plain"]["ids"], got["fast"]["ids"])) if a != b),
                                 min(len(got["plain"]["ids"]), len(got["fast"]["ids"])))
                    diverged.append(first)
                if run_i == 0:
                    drafted += got["fast"]["drafted"]
                    accepted += got["fast"]["accepted"]
                    tokens += len(got["fast"]["ids"]) - 1
            plain_t.append(sums["plain"][2] / sums["plain"][0])
            fast_t.append(sums["fast"][2] / sums["fast"][0])
            plain_c.append(sums["plain"][1])
            fast_c.append(sums["fast"][1])
            models.log(f"{model} speculative [{name}] run {run_i + 1}: plain {plain_t[-1]:.1f} tok/s, "
                       f"prompt lookup {fast_t[-1]:.1f} tok/s")
        rows.append({"engine": f"{engine} + prompt_lookup={draft}", "model": model, "prompts": name,
                     "plain_tokens_per_s": _summary(plain_t), "lookup_tokens_per_s": _summary(fast_t),
                     "speedup_wall": round(statistics.median(f / p for f, p in zip(fast_t, plain_t)), 3),
                     "speedup_cpu": round(statistics.median(p / f for f, p in zip(fast_c, plain_c)), 3),
                     "drafted": drafted, "accepted": accepted, "decode_tokens": tokens,
                     "tokens_per_forward": round(tokens / max(tokens - accepted, 1), 3),
                     "identical": identical == runs * len(prompts), "identical_runs": f"{identical}/{runs * len(prompts)}",
                     "first_difference_at": diverged})
    vlm.close()
    return {"engine": engine, "model": model, "draft": draft, "runs": runs, "max_tokens": max_tokens,
            "threads": threads, "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("engine", nargs="?", default="ours-onnx-w4", choices=[e for e in models.ENGINE_BUILDS
                                                                          if e.startswith("ours-")])
    ap.add_argument("model", nargs="?", default="gemma3-270m", choices=list(models.MODELS))
    ap.add_argument("--draft", type=int, default=8, help="most draft tokens per forward (prompt_lookup=N)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bundle", help="run on this bundle instead of ENGINE's build of MODEL (real weights!)")
    ap.add_argument("--json")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    if args.bundle:
        result = run(args.engine, args.model, args.draft, args.runs, args.max_tokens, args.threads, args.bundle)
    elif not models.spec(args.model).real_text:
        result = {"engine": args.engine, "model": args.model,
                  "skipped": "random weights: acceptance of prompt-lookup drafts would mean nothing"}
    else:
        result = run(args.engine, args.model, args.draft, args.runs, args.max_tokens, args.threads)
    text = json.dumps(result, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
