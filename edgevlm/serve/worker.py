"""One thread owns the model; requests wait in a bounded queue and are answered one at a time.

Batch 1 is right for a device: one conversation fills the KV cache and the cores. The event loop
never touches the model; it submits a ``Job`` and reads the job's events (text deltas, then the
answer or an error) from an asyncio queue the worker fills thread-safely. A job whose client went
away is cancelled: the worker stops generating at the next token and takes the next job.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from dataclasses import dataclass, field

from ..errors import EdgeVLMError
from ..runtime import VLM, Chat
from .conversations import ConversationCache, answered_key, holds_exactly, turn_input
from .errors import ApiError, from_runtime_error
from .metrics import Metrics
from .openai_format import Usage
from .schema import ChatRequest

log = logging.getLogger("edgevlm.serve")


@dataclass
class Answer:
    text: str
    finish_reason: str  # the runtime's: "eos" | "stop" | "length"
    usage: Usage
    timings: dict = field(default_factory=dict)  # server-side figures (like llama-server's "timings")


class Cancelled(Exception):
    """The client went away; the job ends without an answer."""


class Job:
    def __init__(self, request: ChatRequest, loop: asyncio.AbstractEventLoop):
        self.request = request
        self.events: asyncio.Queue = asyncio.Queue()  # str deltas, then one Answer or ApiError
        self.cancelled = threading.Event()
        self.submitted = time.perf_counter()
        self._loop = loop

    def emit(self, event: object) -> None:
        try:
            self._loop.call_soon_threadsafe(self.events.put_nowait, event)
        except RuntimeError:  # the event loop has closed (server shutting down): nobody is listening
            self.cancelled.set()

    def cancel(self) -> None:
        self.cancelled.set()


class ModelWorker:
    def __init__(self, vlm: VLM, metrics: Metrics, max_queue: int = 16, conversations: int = 8):
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self.vlm = vlm
        self.metrics = metrics
        self.max_queue = max_queue
        self.conversations = ConversationCache(vlm, conversations)
        self._jobs: queue.Queue[Job] = queue.Queue(maxsize=max_queue)
        self._live: Chat | None = None  # the Chat whose tokens the backend's KV cache holds
        self._current: Job | None = None
        self.busy = False
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="edgevlm-model", daemon=True)

    # -- the event loop's side ------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._current is not None:
            self._current.cancel()  # shutting down: do not finish a long answer nobody will read
        self._thread.join(timeout=30)

    def submit(self, job: Job) -> None:
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            raise ApiError(429, f"the server is busy: {self.max_queue} requests are already waiting for the model; "
                                "retry shortly", code="queue_full") from None

    @property
    def waiting(self) -> int:
        return self._jobs.qsize()

    # -- the model's side -----------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                job = self._jobs.get(timeout=0.2)
            except queue.Empty:
                continue
            if job.cancelled.is_set():
                self.metrics.add("edgevlm_cancelled_total")
                continue
            self.busy, self._current = True, job
            try:
                job.emit(self._answer(job))
            except Cancelled:
                self.metrics.add("edgevlm_cancelled_total")
            except ApiError as exc:
                job.emit(exc)
            except EdgeVLMError as exc:
                job.emit(from_runtime_error(exc))
            except Exception as exc:  # a bug: log it with its traceback here, answer one line, keep serving
                log.exception("internal error while answering a request")
                job.emit(ApiError(500, f"internal error ({type(exc).__name__}); the server log has the details"))
            finally:
                self.busy, self._current = False, None

    def _answer(self, job: Job) -> Answer:
        request, vlm = job.request, self.vlm
        chat, done = self.conversations.checkout(request)
        if request.exchanges:
            self.metrics.add("edgevlm_prefix_cache_hits_total" if done else "edgevlm_prefix_cache_misses_total")
        # Tokens the KV cache already holds count as cached only if this Chat is the one in it; another
        # Chat's turn since then means the runtime re-feeds this one's tokens (features stay cached).
        was_live, self._live = chat is self._live, chat
        results = []
        for turn, reply in request.exchanges[done:]:  # earlier turns nobody holds: feed them, no generation
            text, images = turn_input(vlm, turn)
            results.append(chat.add_exchange(text, images, reply, **request.image_options))
            self.metrics.add("edgevlm_replayed_turns_total")
            if job.cancelled.is_set():
                raise Cancelled
        text, images = turn_input(vlm, request.question)
        first_token_at = None
        deltas = chat.stream(text, images, **request.options, **request.image_options)
        try:
            for delta in deltas:
                if first_token_at is None:
                    first_token_at = time.perf_counter()
                job.emit(delta.text)
                if job.cancelled.is_set():
                    raise Cancelled
        finally:
            deltas.close()  # a cancelled turn stops here and now
        result = chat.last_result
        results.append(result)
        s = result.stats
        cached = results[0].stats.reused_tokens if was_live else 0
        usage = Usage(s.reused_tokens + s.prompt_tokens, len(result.token_ids), cached)
        ttft = (first_token_at or time.perf_counter()) - job.submitted
        self.metrics.observe_answer(ttft, s.decode_tokens, s.decode_ms / 1e3)
        for name, value in (("edgevlm_prompt_tokens_total", usage.prompt_tokens),
                            ("edgevlm_cached_prompt_tokens_total", cached),
                            ("edgevlm_completion_tokens_total", usage.completion_tokens)):
            self.metrics.add(name, value)
        if holds_exactly(vlm, result):
            self.conversations.checkin(answered_key(request, result.text), chat)
        timings = {"time_to_first_token_ms": round(ttft * 1e3, 1), "prefill_ms": round(s.prefill_ms, 1),
                   "vision_ms": round(sum(r.stats.vision_ms for r in results), 1),
                   "images_encoded": sum(r.stats.images - r.stats.images_from_cache for r in results),
                   "images_from_cache": sum(r.stats.images_from_cache for r in results),
                   "replayed_turns": len(request.exchanges) - done,
                   "decode_tokens_per_s": round(s.decode_tokens_per_s, 1)}
        return Answer(result.text, result.finish_reason, usage, timings)
