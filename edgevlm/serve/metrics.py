"""Server figures in the Prometheus text format (``GET /metrics``): requests, tokens, time to first
token and per-output-token histograms, queue depth, vision-cache and prefix-cache hits.

Written out by hand (a few counters and histograms need no client library). Updated from the
event loop and from the model worker's thread, hence the lock.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections import defaultdict
from typing import Callable

# Seconds; a device answers in tens of milliseconds to tens of seconds.
TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60)
TOKEN_BUCKETS = (0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28)


class Histogram:
    def __init__(self, buckets: tuple[float, ...]):
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value

    def lines(self, name: str) -> list[str]:
        out, running = [], 0
        for bound, count in zip((*self.buckets, "+Inf"), self.counts):
            running += count
            out.append(f'{name}_bucket{{le="{bound}"}} {running}')
        return out + [f"{name}_sum {self.sum:.6f}", f"{name}_count {running}"]


class Metrics:
    def __init__(self):
        self._lock = threading.Lock()
        self.requests: dict[str, int] = defaultdict(int)  # by HTTP status of /v1/chat/completions
        self.counters: dict[str, int] = defaultdict(int)
        self.ttft = Histogram(TTFT_BUCKETS)
        self.per_token = Histogram(TOKEN_BUCKETS)
        self.gauges: dict[str, tuple[str, Callable[[], float]]] = {}  # name -> (help, read at scrape time)

    def count_request(self, status: int) -> None:
        with self._lock:
            self.requests[str(status)] += 1

    def add(self, name: str, value: int = 1) -> None:
        with self._lock:
            self.counters[name] += value

    def observe_answer(self, ttft_s: float, decode_tokens: int, decode_s: float) -> None:
        with self._lock:
            self.ttft.observe(ttft_s)
            if decode_tokens:
                self.per_token.observe(decode_s / decode_tokens)

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        self.gauges[name] = (help_text, read)

    def render(self) -> str:
        lines = ["# HELP edgevlm_requests_total Chat completion requests by HTTP status.",
                 "# TYPE edgevlm_requests_total counter"]
        with self._lock:
            lines += [f'edgevlm_requests_total{{status="{s}"}} {n}' for s, n in sorted(self.requests.items())]
            for name, help_text in COUNTERS.items():
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter", f"{name} {self.counters[name]}"]
            for name, help_text, histogram in (
                    ("edgevlm_time_to_first_token_seconds", "From request received to first token, queue wait "
                     "included.", self.ttft),
                    ("edgevlm_time_per_output_token_seconds", "Decode time per generated token, per request.",
                     self.per_token)):
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} histogram", *histogram.lines(name)]
        for name, (help_text, read) in self.gauges.items():
            kind = "counter" if name.endswith("_total") else "gauge"
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {read():g}"]
        return "\n".join(lines) + "\n"


COUNTERS = {
    "edgevlm_prompt_tokens_total": "Prompt tokens of answered requests (reused ones included).",
    "edgevlm_cached_prompt_tokens_total": "Prompt tokens served from the KV cache, not recomputed.",
    "edgevlm_completion_tokens_total": "Generated tokens.",
    "edgevlm_replayed_turns_total": "Earlier turns fed again because no live conversation held them.",
    "edgevlm_prefix_cache_hits_total": "Requests that continued a live conversation.",
    "edgevlm_prefix_cache_misses_total": "Requests with earlier turns that no live conversation held.",
    "edgevlm_cancelled_total": "Requests stopped because the client went away.",
}


def resident_memory_bytes() -> float:
    """This process's current RSS (Linux /proc; 0 where it is not available)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0
