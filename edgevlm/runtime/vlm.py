"""The runtime API: ``VLM.generate`` / ``VLM.stream`` / ``VLM.chat``.

Three layers, as in mlx-lm: ``Chat._step`` feeds tokens to the backend, ``Chat.stream`` yields text
deltas for one turn, ``generate`` collects a result with figures. A ``Chat`` keeps its conversation
in the backend's KV cache: a follow-up turn feeds only its own new tokens, and images already seen
come from the vision-feature cache instead of the encoder.

Nothing here knows a model family: image processing, placeholders, chat turns and attention blocks
all come from the manifest as data (processing/config.py).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import PromptError
from ..manifest import Manifest
from ..processing.config import ChatTemplate, ImageLayout, ProcessorConfig
from ..processing.images import load_image
from ..processing.prompt import PromptText, build_prompt, expand_images, layout_tokens, message_turns
from ..processing.tokenizer import StreamDecoder, Tokenizer
from .backend import Backend
from .images import grid_of, prepare_image
from .results import Delta, GenerationResult, GenerationStats, peak_rss_mb
from .sampling import Sampler, SamplingParams
from .vision_cache import VisionCache, image_key

ImageInput = Any  # path, bytes or PIL image


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
        self.vision_cache = VisionCache(vision_cache_bytes)
        self.defaults = {"max_new_tokens": 256, "temperature": 0.0, "top_k": 0, "top_p": 1.0,
                         "repetition_penalty": 1.0, **manifest.generation}
        # Generation ends at an end-of-sequence id or at a stop string that is one special token.
        stop_ids = {self.tokenizer.token_to_id(s) for s in self.template.stop_strings}
        self.stop_ids = set(manifest.tokenizer.get("eos_ids", [])) | {i for i in stop_ids if i is not None}
        # Never generate the image placeholder (its rows only ever carry image features), nor ids past
        # the tokenizer's vocabulary (padding rows of an embedding table grown to a multiple of 64).
        feature_id = manifest.tokenizer.get("image_token_id")
        self.suppress_ids = np.array([feature_id] if feature_id is not None else [], dtype=np.int64)
        self.vocab_limit = int(manifest.tokenizer.get("vocab_size", tokenizer.vocab_size))
        self._owner: Chat | None = None  # the chat whose tokens the backend's KV cache holds

    @property
    def max_context(self) -> int:
        return self.backend.max_context

    def chat(self, system: str | None = None) -> "Chat":
        return Chat(self, system)

    def stream(self, prompt: str, images: Sequence[ImageInput] = (), system: str | None = None,
               **options: Any) -> Iterator[Delta]:
        """Yield text deltas of the answer to a one-off prompt (a fresh conversation)."""
        return self.chat(system).stream(prompt, images, **options)

    def generate(self, prompt: str, images: Sequence[ImageInput] = (), system: str | None = None,
                 **options: Any) -> GenerationResult:
        return self.chat(system).send(prompt, images, **options)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> "VLM":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Chat:
    """One conversation. ``send`` / ``stream`` add a user turn and answer it."""

    def __init__(self, vlm: VLM, system: str | None = None):
        self.vlm = vlm
        self.system = system
        self.turns = 0
        self.fed: list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]] = []  # what the KV cache holds
        self.pending: list[int] = []  # sampled but not yet fed (the last token of a turn)
        self.history: list[int] = []  # every token id of the conversation (repetition penalty)
        self.last_result: GenerationResult | None = None

    # -- one turn -------------------------------------------------------------------------------
    def send(self, text: str, images: Sequence[ImageInput] = (), **options: Any) -> GenerationResult:
        for _ in self.stream(text, images, **options):
            pass
        assert self.last_result is not None
        return self.last_result

    def add_exchange(self, text: str, images: Sequence[ImageInput] = (), reply: str = "") -> GenerationResult:
        """Add a user turn and the assistant's ``reply`` to it WITHOUT generating the reply.

        For replaying a conversation whose earlier answers the caller already holds (an
        OpenAI-style server receives the whole history with every request: edgevlm/serve). The
        user turn is prefilled (images through the vision cache as usual); the reply's tokens wait,
        like the last sampled token of a turn, and are fed at the start of the next turn.
        """
        result = self.send(text, images, max_new_tokens=0)  # prefill only
        if self.vlm.template.strip_content != "none":
            reply = reply.strip()  # as the chat template renders an assistant message
        self.pending = self.vlm.tokenizer.encode(reply).tolist()
        return result

    def stream(self, text: str, images: Sequence[ImageInput] = (), *, max_new_tokens: int | None = None,
               temperature: float | None = None, top_k: int | None = None, top_p: float | None = None,
               repetition_penalty: float | None = None, seed: int | None = None,
               stop: Sequence[str] = ()) -> Iterator[Delta]:
        vlm, stats = self.vlm, GenerationStats()
        opts = {k: v if v is not None else vlm.defaults[k] for k, v in
                (("max_new_tokens", max_new_tokens), ("temperature", temperature), ("top_k", top_k),
                 ("top_p", top_p), ("repetition_penalty", repetition_penalty))}
        sampler = Sampler(SamplingParams(opts["temperature"], opts["top_k"], opts["top_p"],
                                         opts["repetition_penalty"], seed))
        start = time.perf_counter()

        # 1. images -> grids (cheap), so the prompt length is known before any heavy work
        pictures = [load_image(src, vlm.processor.max_pixels) for src in images]
        settings = repr(sorted(vlm.manifest.processor.items()))
        keys = [image_key(p, settings) for p in pictures]
        cached = [vlm.vision_cache.get(k) for k in keys]
        grids = [c[1] if c is not None else grid_of(p, vlm.processor) for c, p in zip(cached, pictures)]

        # 2. this turn's tokens, and the context check
        layout = layout_tokens(vlm.tokenizer, PromptText(self._turn_text(text, grids)), vlm.layout,
                               [1 if g is None else 1 + g[0] * g[1] for g in grids])
        ids = np.concatenate([np.asarray(self.pending, dtype=np.int64), layout.input_ids])
        blocks = np.concatenate([np.full(len(self.pending), -1, np.int32), layout.block_ids])
        used = sum(len(seg[0]) for seg in self.fed)
        if used + len(ids) + 1 > vlm.max_context:
            raise PromptError(
                f"the prompt needs {len(ids)} tokens ({len(layout.image_positions)} for {len(images)} image(s))"
                f"{f' after {used} tokens of earlier turns' if used else ''}, more than the context of "
                f"{vlm.max_context} allows; shorten the prompt, use fewer or smaller images (max_slice_nums), "
                "start a new chat, or export with a larger --max-context")

        # 3. image features: cache or vision encoder
        t_slice = t_vision = 0.0
        features = []
        for picture, key, hit in zip(pictures, keys, cached):
            if hit is not None:
                features.append(hit[0])
                stats.images_from_cache += 1
                continue
            t0 = time.perf_counter()
            prepared = prepare_image(picture, vlm.processor)
            t1 = time.perf_counter()
            feats = vlm.backend.encode_images(prepared.inputs)  # [n_chunks, tokens, hidden]
            t_slice, t_vision = t_slice + t1 - t0, t_vision + time.perf_counter() - t1
            vlm.vision_cache.put(key, feats, prepared.grid)
            features.append(feats)
        rows = (np.concatenate([f.reshape(-1, f.shape[-1]) for f in features]) if features else None)
        stats.images, stats.slicing_ms, stats.vision_ms = len(images), t_slice * 1e3, t_vision * 1e3

        # 4. prefill only what the cache does not hold yet
        self._own_backend()
        stats.reused_tokens, stats.prompt_tokens = used, len(ids)
        t0 = time.perf_counter()
        logits = self._feed(ids, rows, blocks if (blocks >= 0).any() else None)
        stats.prefill_ms = (time.perf_counter() - t0) * 1e3
        stats.prefill_tokens_per_s = len(ids) / max(stats.prefill_ms / 1e3, 1e-9)
        self.history += ids.tolist()
        self.pending = []

        # 5. decode
        generated, finish = [], "length"
        decoder, text_out, emitted = StreamDecoder(vlm.tokenizer), "", 0
        stops = [s for s in stop if s]
        hold = max((len(s) for s in stops), default=1) - 1
        suppress = vlm.suppress_ids[vlm.suppress_ids < len(logits)]  # the vocabulary size does not change
        t_decode = time.perf_counter()
        for step in range(opts["max_new_tokens"]):
            logits[suppress] = -np.inf
            logits[vlm.vocab_limit:] = -np.inf
            token = sampler(logits, self.history)
            if step == 0:
                stats.time_to_first_token_ms = (time.perf_counter() - start) * 1e3
            if token in vlm.stop_ids:
                finish = "eos"
                break
            generated.append(token)
            self.history.append(token)
            text_out += decoder.push(token)
            cut = min((text_out.find(s) for s in stops if s in text_out), default=-1)
            if cut >= 0:
                text_out, finish = text_out[:cut], "stop"
                break
            safe = len(text_out) - hold  # hold back what could be the start of a stop string
            if safe > emitted:
                yield Delta(text_out[emitted:safe], token)
                emitted = safe
            if step == opts["max_new_tokens"] - 1 or used + len(ids) + len(generated) >= vlm.max_context:
                self.pending = [token]
                break
            logits = self._feed(np.array([token], dtype=np.int64), None, None)
        if finish != "stop":
            text_out += decoder.flush()
        if len(text_out) > emitted:
            yield Delta(text_out[emitted:], generated[-1] if generated else -1)
        decode_s = time.perf_counter() - t_decode
        stats.decode_tokens, stats.decode_ms = len(generated), decode_s * 1e3
        stats.decode_tokens_per_s = len(generated) / decode_s if decode_s > 0 and generated else 0.0
        stats.peak_rss_mb = peak_rss_mb()
        self.turns += 1
        self.last_result = GenerationResult(text_out, generated, finish, stats)

    # -- helpers -------------------------------------------------------------------------------
    def _turn_text(self, text: str, grids: list) -> str:
        """Prompt text of the next turn: the whole opening on turn 1, else close + user turn + cue."""
        vlm = self.vlm
        if self.turns == 0:
            return build_prompt(text, grids, vlm.layout, vlm.template, system=self.system).text
        template = vlm.template
        (_, content), = message_turns(text, len(grids), vlm.layout, template)
        if template.strip_content != "none":
            content = content.strip()
        close = template.assistant_template.split("{content}", 1)[1]  # e.g. "<|im_end|>\n"
        turn = close + template.user_template.format(content=content) + template.generation_prompt
        return expand_images(turn, grids, vlm.layout) if grids else turn

    def _feed(self, ids: np.ndarray, rows: np.ndarray | None, blocks: np.ndarray | None) -> np.ndarray:
        self.fed.append((ids, rows, blocks))
        return self.vlm.backend.forward(ids, rows, blocks)

    def _own_backend(self) -> None:
        """If another chat used the backend since our last turn, rebuild our KV cache from what we fed."""
        vlm = self.vlm
        if vlm._owner is self:
            return
        vlm.backend.rewind(0)
        for ids, rows, blocks in self.fed:
            vlm.backend.forward(ids, rows, blocks)
        vlm._owner = self
