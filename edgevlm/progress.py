"""What long commands show while they work: one live line per stage on a terminal, plain lines otherwise.

``Progress`` is the ``progress`` callable export and quantize take: each call starts a stage. On a
terminal the stage's line shows its elapsed time while it runs and how long it took when the next
stage starts; when stderr is not a terminal (CI, a log file) each stage is one plain line. Nothing
goes to stdout, so ``--json`` output stays clean. ``quiet_third_party`` hides library messages the
user cannot act on (transformers' torchvision and deprecation notices, onnxruntime's quantizer advice).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
import warnings
from typing import Iterator, TextIO


class Progress:
    def __init__(self, stream: TextIO | None = None, live: bool | None = None, prefix: str = "[edgevlm]"):
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.prefix = prefix
        self._message: str | None = None
        self._started = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def __call__(self, message: str) -> None:
        with self._lock:
            self._finish_line()
            self._message, self._started = message, time.perf_counter()
            if not self.live:
                print(f"{self.prefix} {message}", file=self.stream, flush=True)
                return
            self._draw()
        if self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, daemon=True, name="edgevlm-progress")
            self._ticker.start()

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            self._finish_line()
            self._message = None

    def _draw(self, final: bool = False) -> None:
        elapsed = time.perf_counter() - self._started
        mark = f"done in {elapsed:.1f} s" if final else f"{elapsed:.0f} s"
        self.stream.write(f"\r\033[K{self.prefix} {self._message} ... {mark}" + ("\n" if final else ""))
        self.stream.flush()

    def _finish_line(self) -> None:
        if self.live and self._message is not None:
            self._draw(final=True)

    def _tick(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                if self._message is not None:
                    self._draw()


@contextlib.contextmanager
def quiet_third_party() -> Iterator[None]:
    """Library notices the user cannot act on, hidden for the duration (errors still surface)."""
    loggers = [logging.getLogger(name) for name in ("transformers", "root", "onnxruntime", "torch")]
    root = logging.getLogger()
    saved = [(lg, lg.level) for lg in loggers] + [(root, root.level)]
    transformers_verbosity = None
    try:
        from transformers.utils import logging as hf_logging

        transformers_verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
    except ImportError:
        pass
    for lg, _ in saved:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            for category in (FutureWarning, DeprecationWarning, UserWarning):
                warnings.simplefilter("ignore", category)
            yield
    finally:
        for lg, level in saved:
            lg.setLevel(level)
        if transformers_verbosity is not None:
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity(transformers_verbosity)
