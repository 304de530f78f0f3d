"""Response bodies in OpenAI's exact shapes: a completion, stream chunks (server-sent events ending
in ``data: [DONE]``), usage, the model list."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

# The runtime's finish reasons -> OpenAI's ("eos" and a stop string are both "stop").
FINISH_REASONS = {"eos": "stop", "stop": "stop", "length": "length"}


@dataclass
class Usage:
    prompt_tokens: int  # the whole prompt: reused from the KV cache + computed for this request
    completion_tokens: int
    cached_tokens: int  # prompt tokens this request did not recompute (they were in the KV cache)

    def to_dict(self) -> dict:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens,
                "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
                "completion_tokens_details": {"reasoning_tokens": 0}}


class Completion:
    """Shapes one request's answer: the same id and creation time on every chunk."""

    def __init__(self, model: str):
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model

    def _envelope(self, obj: str) -> dict:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model,
                "system_fingerprint": None}

    def message(self, text: str, finish_reason: str, usage: Usage, timings: dict) -> dict:
        choice = {"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                  "logprobs": None, "finish_reason": FINISH_REASONS[finish_reason]}
        return {**self._envelope("chat.completion"), "choices": [choice], "usage": usage.to_dict(),
                "timings": timings}

    def chunk(self, delta: dict, finish_reason: str | None = None, include_usage: bool = False) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None,
                  "finish_reason": FINISH_REASONS[finish_reason] if finish_reason else None}
        body = {**self._envelope("chat.completion.chunk"), "choices": [choice]}
        if include_usage:
            body["usage"] = None  # OpenAI: null on every chunk but the last when usage was asked for
        return sse(body)

    def usage_chunk(self, usage: Usage, timings: dict) -> bytes:
        return sse({**self._envelope("chat.completion.chunk"), "choices": [], "usage": usage.to_dict(),
                    "timings": timings})


def sse(body: dict) -> bytes:
    return b"data: " + json.dumps(body, ensure_ascii=False).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"


def model_card(name: str, created: int) -> dict:
    return {"id": name, "object": "model", "created": created, "owned_by": "edgevlm"}
