"""Golden records for sampling (``sampler.json``): SplitMix64 streams, and tokens sampled step by step
from fixed logits through the logits processors (runtime/generate.py) and the Sampler (runtime/sampling.py),
as ``generate_step`` does: float64 scores, processors in order, then the sampler."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgevlm.runtime.generate import cap_vocabulary, penalize_repetition, suppress_tokens
from edgevlm.runtime.sampling import Sampler, SamplingParams, SplitMix64

from .common import write_bin

SETTINGS = [
    {"temperature": 0.0},
    {"temperature": 0.0, "repetition_penalty": 1.3},
    {"temperature": 1.0},
    {"temperature": 0.7, "top_k": 100, "top_p": 0.8, "repetition_penalty": 1.05},
    {"temperature": 1.5, "top_k": 5},
    {"temperature": 0.9, "top_p": 0.5},
    {"temperature": 0.3, "top_p": 0.95, "repetition_penalty": 0.8},
    {"temperature": 2.0, "top_k": 1},
]
VOCABS = [(7, False), (100, True), (1000, False), (32000, False), (151, True)]  # (size, coarse logits with ties)
STEPS = 10


def processors_from_json(specs: list[dict[str, Any]]) -> list:
    """The golden files name the processors as {"kind": ..., parameter}; the Java test builds the same."""
    make = {"suppress_tokens": lambda s: suppress_tokens(np.asarray(s["ids"], np.int64)),
            "cap_vocabulary": lambda s: cap_vocabulary(int(s["limit"])),
            "penalize_repetition": lambda s: penalize_repetition(float(s["penalty"]))}
    return [make[s["kind"]](s) for s in specs]


def _sample(logits: np.ndarray, params: SamplingParams, specs: list[dict[str, Any]], history: list[int]) -> list[int]:
    """One token per row of ``logits`` [steps, V], each appended to ``history`` (generate_step's loop)."""
    sampler, processors, tokens = Sampler(params), processors_from_json(specs), []
    for row in logits:
        scores = row.astype(np.float64)  # [V]
        for process in processors:
            process(scores, history)
        token = sampler(scores)
        tokens.append(token)
        history.append(token)
    return tokens


def _logits(rng: np.random.RandomState, vocab: int, ties: bool) -> np.ndarray:
    logits = (rng.standard_normal((STEPS, vocab)) * 3).astype(np.float32)  # [steps, V]
    if ties:  # coarse values: many exact ties, so the stable order (lower id first) matters
        logits = np.round(logits).astype(np.float32)
    return logits


def sampler_records(out: Path) -> dict[str, Any]:
    draws = []
    for seed in (0, 1, 42, 2**63 + 5, 2**64 - 1):
        rng = SplitMix64(seed)
        draws.append({"seed": str(seed), "u64": [str(rng.next_u64()) for _ in range(4)],
                      "uniform": [rng.uniform() for _ in range(4)]})
    cases, rng = [], np.random.RandomState(7)
    for index, (vocab, ties) in enumerate(VOCABS):
        logits = _logits(rng, vocab, ties)
        ref = write_bin(out, f"sampler_logits_{index}.bin", logits)
        for s_index, setting in enumerate(SETTINGS):
            seed = 1000 * index + s_index
            history = [int(v) for v in rng.randint(0, vocab, 5)]
            penalty = setting.get("repetition_penalty", 1.0)
            # as VLM.logits_processors: the penalty only when it is not 1
            specs = [{"kind": "penalize_repetition", "penalty": penalty}] if penalty != 1.0 else []
            start = list(history)
            tokens = _sample(logits, SamplingParams(seed=seed, **setting), specs, history)
            cases.append({"logits": ref, "params": {**setting, "seed": seed}, "processors": specs, "history": start,
                          "tokens": tokens})
    cases += _processor_cases(out)
    return {"splitmix64": draws, "cases": cases}


def _processor_cases(out: Path) -> list[dict[str, Any]]:
    """Every processor, in VLM.logits_processors' order (suppressed ids, vocabulary cap, penalty), where it
    changes the answer: the suppressed ids and the capped tail hold each step's best scores."""
    rng, cases = np.random.RandomState(11), []
    for index, (vocab, ties) in enumerate([(64, False), (300, True)]):
        logits = _logits(rng, vocab, ties)
        limit = vocab - vocab // 8
        suppressed = sorted({int(np.argmax(logits[0])), int(np.argmax(logits[1][:limit]))})
        logits[:, limit:] += 10.0  # the padding rows would win every step
        ref = write_bin(out, f"sampler_processors_{index}.bin", logits)
        for s_index, setting in enumerate([SETTINGS[0], SETTINGS[1], SETTINGS[3], SETTINGS[4]]):
            specs = [{"kind": "suppress_tokens", "ids": suppressed}, {"kind": "cap_vocabulary", "limit": limit}]
            if setting.get("repetition_penalty", 1.0) != 1.0:
                specs.append({"kind": "penalize_repetition", "penalty": setting["repetition_penalty"]})
            seed = 500 + 10 * index + s_index
            history = [int(v) for v in rng.randint(0, limit, 5)]
            start = list(history)
            tokens = _sample(logits, SamplingParams(seed=seed, **setting), specs, history)
            assert not set(tokens) & set(suppressed) and max(tokens) < limit
            cases.append({"logits": ref, "params": {**setting, "seed": seed}, "processors": specs, "history": start,
                          "tokens": tokens})
    return cases
