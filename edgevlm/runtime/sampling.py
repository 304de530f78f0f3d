"""Token sampling: greedy, temperature, top-k, top-p, seeded.

The random stream is SplitMix64 (a few integer operations) rather than numpy's generator so that
the Android app's JVM core reproduces the same tokens for the same seed bit for bit.
Order of operations follows transformers: the logits processors (generate.py: suppressed ids,
vocabulary cap, repetition penalty) -> temperature -> top-k -> top-p.
"""

from __future__ import annotations

from dataclasses import dataclass
import numpy as np

_MASK64 = (1 << 64) - 1


class SplitMix64:
    """Portable 64-bit generator; ``uniform()`` returns a float in [0, 1) with 53 random bits."""

    def __init__(self, seed: int):
        self.state = seed & _MASK64

    def next_u64(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        return z ^ (z >> 31)

    def uniform(self) -> float:
        return (self.next_u64() >> 11) * (1.0 / (1 << 53))


@dataclass
class SamplingParams:
    temperature: float = 0.0  # 0 = greedy
    top_k: int = 0  # 0 = off
    top_p: float = 1.0  # 1 = off
    repetition_penalty: float = 1.0  # 1 = off
    seed: int | None = None

    def check(self) -> None:
        from ..errors import EdgeVLMError

        if self.temperature < 0 or self.top_k < 0 or not 0 < self.top_p <= 1 or self.repetition_penalty <= 0:
            raise EdgeVLMError(f"invalid sampling settings {self}: need temperature >= 0, top_k >= 0, "
                               "0 < top_p <= 1, repetition_penalty > 0")


class Sampler:
    def __init__(self, params: SamplingParams):
        params.check()
        self.params = params
        seed = params.seed if params.seed is not None else int.from_bytes(np.random.bytes(8), "little")
        self.rng = SplitMix64(seed)

    @classmethod
    def greedy(cls) -> "Sampler":
        return cls(SamplingParams(seed=0))

    def __call__(self, scores: np.ndarray) -> int:
        """scores float64 [vocab] (after the logits processors) -> the next token id."""
        p = self.params
        if p.temperature == 0.0:
            return int(np.argmax(scores))
        scores /= p.temperature
        order = np.argsort(-scores, kind="stable")  # [V] best first; ties keep the lower id first
        if p.top_k:
            order = order[: p.top_k]
        probs = np.exp(scores[order] - scores[order[0]])
        probs /= probs.sum()
        if p.top_p < 1.0:
            # keep the smallest prefix whose mass reaches top_p (always at least one token)
            keep = int(np.searchsorted(np.cumsum(probs), p.top_p) + 1)
            order, probs = order[:keep], probs[:keep] / probs[:keep].sum()
        u = self.rng.uniform()
        index = int(np.searchsorted(np.cumsum(probs), u, side="right"))
        return int(order[min(index, len(order) - 1)])
