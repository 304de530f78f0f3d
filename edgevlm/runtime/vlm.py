"""The runtime API: ``VLM.generate`` / ``VLM.stream`` / ``VLM.chat``.

A turn is three layers, as in mlx-lm: prepare it (turn.py: images, tokens, feature rows, blocks,
positions), generate tokens step by step (generate.py: feed, logits processors, sampler), and
turn them into text (text_stream.py: stop strings, hold-back, deltas). ``Chat.stream`` composes
them; the export parity check, the quantization report and the benchmarks use the same layers.

A ``Chat`` keeps its conversation in the backend's cache: a follow-up turn feeds only its own new
tokens, and images already seen come from the vision-feature cache instead of the encoder. One
model serves one turn at a time: calls from several threads are serialised (each gets the answer it
would get alone), and a turn started while another is streaming on the same thread is an error.

Nothing here knows a model family: image processing, placeholders, chat turns and attention blocks
all come from the manifest as data (processing/config.py).
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import EdgeVLMError, PromptError
from ..manifest import Manifest
from ..processing.config import ChatTemplate, ImageLayout, ProcessorConfig
from ..processing.tokenizer import Tokenizer
from .backend import Backend
from .generate import cap_vocabulary, feed, generate_step, penalize_repetition, suppress_tokens
from .results import Delta, GenerationResult, GenerationStats, peak_rss_mb
from .sampling import Sampler, SamplingParams
from .speculative import DraftStats, PromptLookup, speculative_steps
from .tables import read_tables
from .text_stream import TextStream
from .turn import Conversation, prepare_turn
from .vision_cache import VisionCache

ImageInput = Any  # path, bytes or PIL image
OPTIONS = ("max_new_tokens", "temperature", "top_k", "top_p", "repetition_penalty", "prompt_lookup")
# Per-request image settings the bundle's processor kind may take (runtime/images.py request_processor):
# the native-resolution pixel budget, the main speed/quality dial of such models on a phone.
IMAGE_OPTIONS = ("min_pixels", "max_pixels")


class VLM:
    def __init__(self, bundle: str | Path, manifest: Manifest, backend: Backend, tokenizer: Tokenizer,
                 vision_cache_bytes: int = 256 << 20):
        self.bundle = Path(bundle)
        self.manifest = manifest
        self.backend = backend
        self.tokenizer = tokenizer
        self.processor = ProcessorConfig.from_dict(manifest.processor)
        self.layout = ImageLayout.from_dict(manifest.layout)
        self.template = ChatTemplate.from_dict(manifest.chat_template)
        self.tables = read_tables(self.bundle, manifest)  # data parts, e.g. the feature packing's row separator
        self.vision_cache = VisionCache(vision_cache_bytes)
        self.defaults = {"max_new_tokens": 256, "temperature": 0.0, "top_k": 0, "top_p": 1.0,
                         "repetition_penalty": 1.0, "prompt_lookup": 0, **manifest.generation}
        # Generation ends at an end-of-sequence id or at a stop string that is one special token.
        stop_ids = {self.tokenizer.token_to_id(s) for s in self.template.stop_strings}
        self.stop_ids = set(manifest.tokenizer.eos_ids) | {i for i in stop_ids if i is not None}
        # Never generate the image placeholder (its rows only ever carry image features), nor ids past
        # the tokenizer's vocabulary (padding rows of an embedding table grown to a multiple of 64).
        feature_id = manifest.tokenizer.image_token_id
        self.suppress_ids = np.array([feature_id] if feature_id is not None else [], dtype=np.int64)
        self.vocab_limit = int(manifest.tokenizer.vocab_size or tokenizer.vocab_size)
        self._owner: Chat | None = None  # the chat whose tokens the backend's cache holds
        self._lock = threading.Lock()
        self._streaming: int | None = None  # thread id of the turn in progress

    @property
    def max_context(self) -> int:
        return self.backend.max_context

    def chat(self, system: str | None = None) -> "Chat":
        return Chat(self, system)

    def stream(self, prompt: str, images: Sequence[ImageInput] = (), system: str | None = None,
               **options: Any) -> Iterator[Delta]:
        """Yield text deltas of the answer to a one-off prompt (a fresh conversation). ``raw=True``: the
        prompt is a completion (no chat template: BOS + the text)."""
        return self.chat(system).stream(prompt, images, **options)

    def generate(self, prompt: str, images: Sequence[ImageInput] = (), system: str | None = None,
                 **options: Any) -> GenerationResult:
        return self.chat(system).send(prompt, images, **options)

    def logits_processors(self, repetition_penalty: float) -> list:
        processors = [suppress_tokens(self.suppress_ids), cap_vocabulary(self.vocab_limit)]
        if repetition_penalty != 1.0:
            processors.append(penalize_repetition(repetition_penalty))
        return processors

    @contextmanager
    def turn_lock(self) -> Iterator[None]:
        """One turn at a time: other threads wait; the same thread starting a second turn is an error."""
        if self._streaming == threading.get_ident():
            raise EdgeVLMError("a turn is already streaming on this model in this thread; finish reading it (or "
                               "close its iterator) before starting another, or use a second model")
        with self._lock:
            self._streaming = threading.get_ident()
            try:
                yield
            finally:
                self._streaming = None

    def close(self) -> None:
        with self._lock:
            self.backend.close()

    def __enter__(self) -> "VLM":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Chat:
    """One conversation. ``send`` / ``stream`` add a user turn and answer it."""

    def __init__(self, vlm: VLM, system: str | None = None):
        self.vlm = vlm
        self.conv = Conversation(system=system, next_position=vlm.manifest.text.position_offset)
        self.last_result: GenerationResult | None = None

    @property
    def turns(self) -> int:
        return self.conv.turns

    # -- one turn -------------------------------------------------------------------------------
    def send(self, text: str, images: Sequence[ImageInput] = (), **options: Any) -> GenerationResult:
        for _ in self.stream(text, images, **options):
            pass
        assert self.last_result is not None
        return self.last_result

    def stream(self, text: str, images: Sequence[ImageInput] = (), *, stop: Sequence[str] = (),
               seed: int | None = None, raw: bool = False, **options: Any) -> Iterator[Delta]:
        """Yield text deltas of the answer. Options: max_new_tokens (0: prefill only), temperature, top_k,
        top_p, repetition_penalty; ``seed`` for sampling; ``stop`` strings; ``raw`` (no chat template);
        ``prompt_lookup=N``: greedy decoding verifies up to N tokens drafted from the conversation itself
        per forward (speculative.py; the same tokens, faster when the answer repeats its input; 0 = off);
        ``min_pixels`` / ``max_pixels`` (native-resolution bundles: the pixel budget of this turn's images)."""
        vlm = self.vlm
        unknown = sorted(set(options) - set(OPTIONS) - set(IMAGE_OPTIONS))
        if unknown:
            raise TypeError(f"unknown generation option(s) {', '.join(unknown)}; use "
                            f"{', '.join(OPTIONS + IMAGE_OPTIONS)}")
        image_options = {k: options.pop(k) for k in IMAGE_OPTIONS if k in options}
        opts = {k: options[k] if options.get(k) is not None else vlm.defaults[k] for k in OPTIONS}
        if int(opts["max_new_tokens"]) < 0:
            raise PromptError(f"max_new_tokens is {opts['max_new_tokens']}; give 0 (prefill only) or more")
        if int(opts["prompt_lookup"]) < 0:
            raise PromptError(f"prompt_lookup is {opts['prompt_lookup']}; give 0 (off) or the most draft tokens per step")
        sampler = Sampler(SamplingParams(opts["temperature"], opts["top_k"], opts["top_p"],
                                         opts["repetition_penalty"], seed))
        with vlm.turn_lock():
            yield from self._turn(text, images, opts, sampler, stop, raw, image_options)

    def add_exchange(self, text: str, images: Sequence[ImageInput] = (), reply: str = "",
                     **image_options: Any) -> GenerationResult:
        """Add a user turn and the assistant's ``reply`` to it WITHOUT generating the reply.

        For replaying a conversation whose earlier answers the caller already holds (an OpenAI-style
        server receives the whole history with every request: edgevlm/serve). The user turn is
        prefilled (images through the vision cache as usual); the reply's tokens wait, like the last
        sampled token of a turn, and are fed at the start of the next turn. ``image_options``: as ``stream``'s
        ``min_pixels`` / ``max_pixels``."""
        result = self.send(text, images, max_new_tokens=0, **image_options)  # prefill only
        if self.vlm.template.strip_content != "none":
            reply = reply.strip()  # as the chat template renders an assistant message
        self.conv.pending = self.vlm.tokenizer.encode(reply).tolist()
        return result

    def _turn(self, text: str, images: Sequence[ImageInput], opts: dict[str, Any], sampler: Sampler,
              stop: Sequence[str], raw: bool, image_options: dict[str, Any]) -> Iterator[Delta]:
        vlm, conv, stats = self.vlm, self.conv, GenerationStats()
        start = time.perf_counter()
        turn = prepare_turn(vlm, conv, text, images, raw, image_options)  # PromptError before any heavy work
        stats.images, stats.images_from_cache = turn.images, turn.images_from_cache
        stats.slicing_ms, stats.vision_ms = turn.slicing_ms, turn.vision_ms
        stats.reused_tokens, stats.prompt_tokens = conv.n_fed, len(turn.ids)

        self._own_backend()
        t0 = time.perf_counter()
        logits = feed(vlm.backend, turn)
        stats.prefill_ms = (time.perf_counter() - t0) * 1e3
        stats.prefill_tokens_per_s = len(turn.ids) / max(stats.prefill_ms / 1e3, 1e-9)
        conv.fed.append((turn.ids, turn.rows, turn.blocks, turn.positions))
        fed_before = len(conv.fed)
        conv.history += turn.ids.tolist()
        conv.pending, conv.turns, conv.images = [], conv.turns + 1, conv.images + turn.images
        position = turn.next_position
        # Room for generated tokens: each but the last is fed into the cache.
        budget = min(int(opts["max_new_tokens"]), vlm.max_context - conv.n_fed)

        generated: list[int] = []
        finish, text_stream = "length", TextStream(vlm.tokenizer, stop)
        t_decode = time.perf_counter()
        processors, drafts = vlm.logits_processors(opts["repetition_penalty"]), DraftStats()

        def on_feed(ids: np.ndarray, positions: np.ndarray) -> None:
            conv.fed.append((ids, None, None, positions))

        if int(opts["prompt_lookup"]):
            steps = speculative_steps(vlm.backend, logits, sampler, processors, conv.history, position, budget,
                                      PromptLookup(banned=vlm.suppress_ids), int(opts["prompt_lookup"]), drafts,
                                      on_feed=on_feed)
        else:
            steps = generate_step(vlm.backend, logits, sampler, processors, conv.history, position, budget,
                                  on_feed=on_feed)
        try:
            for token in steps:
                if not generated:
                    stats.time_to_first_token_ms = (time.perf_counter() - start) * 1e3
                if token in vlm.stop_ids:
                    conv.history.pop()  # the template's close of the turn stands for it
                    finish = "eos"
                    break
                generated.append(token)
                delta = text_stream.push(token)
                if delta:
                    yield Delta(delta, token)
                if text_stream.stopped:
                    finish = "stop"
                    break
        finally:  # also when the caller stops reading mid-turn: the conversation stays consistent
            steps.close()
            fed = len(conv.fed) - fed_before  # decode steps fed into the cache
            conv.pending = generated[fed:]  # sampled, not fed (at most the last): the next turn feeds it first
            conv.next_position = position + fed
        rest = text_stream.finish()
        if rest:
            yield Delta(rest, generated[-1] if generated else -1)
        decode_s = time.perf_counter() - t_decode
        stats.decode_tokens, stats.decode_ms = len(generated), decode_s * 1e3
        stats.decode_tokens_per_s = len(generated) / decode_s if decode_s > 0 and generated else 0.0
        stats.draft_tokens, stats.accepted_draft_tokens = drafts.drafted, drafts.accepted
        stats.peak_rss_mb = peak_rss_mb()
        self.last_result = GenerationResult(text_stream.text, generated, finish, stats)

    def _own_backend(self) -> None:
        """If another chat used the backend since our last turn, rebuild our cache from what we fed."""
        vlm = self.vlm
        if vlm._owner is self:
            return
        vlm.backend.rewind(0)
        for ids, rows, blocks, positions in self.conv.fed:
            vlm.backend.forward(ids, rows, blocks, positions)
        vlm._owner = self
