"""What generation returns: text deltas while streaming, a result with figures at the end."""

from __future__ import annotations

import resource
import sys
from dataclasses import asdict, dataclass, field


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


@dataclass
class Delta:
    text: str
    token_id: int


@dataclass
class GenerationStats:
    images: int = 0
    images_from_cache: int = 0
    slicing_ms: float = 0.0  # image loading + preprocessing
    vision_ms: float = 0.0  # vision encoder
    prompt_tokens: int = 0  # tokens of this turn's prompt, image placeholders included
    reused_tokens: int = 0  # earlier turns already in the KV cache (not recomputed)
    prefill_ms: float = 0.0
    prefill_tokens_per_s: float = 0.0
    time_to_first_token_ms: float = 0.0
    decode_tokens: int = 0
    decode_ms: float = 0.0
    decode_tokens_per_s: float = 0.0
    draft_tokens: int = 0  # prompt-lookup draft tokens verified (speculative.py; 0 when it is off)
    accepted_draft_tokens: int = 0  # of those, the ones the model agreed with
    peak_rss_mb: float = 0.0

    def to_dict(self) -> dict:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


@dataclass
class GenerationResult:
    text: str
    token_ids: list[int]
    finish_reason: str  # "eos" | "stop" | "length"
    stats: GenerationStats = field(default_factory=GenerationStats)

    def to_dict(self) -> dict:
        return {"text": self.text, "token_ids": self.token_ids, "finish_reason": self.finish_reason,
                "stats": self.stats.to_dict()}
