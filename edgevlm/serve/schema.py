"""A chat-completions request body -> a checked ``ChatRequest``, or a 400 naming the field.

Known fields are checked for type and range; fields that would change the answer in a way this
server cannot honour (n > 1, tools, logprobs, penalties other than repetition_penalty, JSON
response formats) are refused rather than ignored; unknown fields are ignored, as most OpenAI-
compatible servers do (clients send vendor extras). Extensions: ``top_k``, ``repetition_penalty``, and
``max_pixels`` / ``min_pixels``: the pixel budget of the request's images on native-resolution bundles
(Qwen2-VL class; on a phone the main speed / quality dial). The budget holds for every image of the
request, earlier turns' too: a conversation is continued from the server's cache only under the budget
its images were encoded with (conversations.py).

The conversation is normalised to: optional system text, finished (user turn, assistant reply)
exchanges, and the final user turn that gets answered. Consecutive user messages are merged into
one turn (their parts in order).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..runtime.vlm import IMAGE_OPTIONS
from .errors import invalid
from .image_urls import RequestImage, read_image_url

Part = str | RequestImage  # a user turn's content: text and images in order


@dataclass(frozen=True)
class UserTurn:
    parts: tuple[Part, ...]

    @property
    def images(self) -> list[bytes]:
        return [p.data for p in self.parts if isinstance(p, RequestImage)]

    @property
    def identity(self) -> list:
        """What the turn is for conversation keys: its text and its images' digests, in order."""
        return [p if isinstance(p, str) else {"image": p.digest} for p in self.parts]


@dataclass
class ChatRequest:
    system: str | None
    exchanges: list[tuple[UserTurn, str]]  # earlier turns and the assistant's replies
    question: UserTurn  # the turn to answer
    options: dict = field(default_factory=dict)  # Chat.stream keyword arguments
    image_options: dict = field(default_factory=dict)  # max_pixels / min_pixels, for every image of the request
    stream: bool = False
    include_usage: bool = False

    @property
    def n_images(self) -> int:
        return sum(len(turn.images) for turn, _ in self.exchanges) + len(self.question.images)


@dataclass(frozen=True)
class Limits:
    max_images: int = 8
    allow_file_urls: bool = False


_TYPE_NAMES = {str: "a string", bool: "true or false", int: "an integer", float: "a number", list: "an array",
               dict: "an object"}


def _typed(body: dict, name: str, kind: type, default: Any = None) -> Any:
    """body[name] if it is of ``kind`` (ints count as numbers; booleans never count as numbers); null -> default."""
    value = body.get(name)
    if value is None:
        return default
    ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        ok, value = True, float(value)
    if not ok:
        raise invalid(f"'{name}' must be {_TYPE_NAMES[kind]}, not {json.dumps(value)[:40]}", name)
    return value


def _in_range(name: str, value, ok: bool, wanted: str):
    if value is not None and not ok:
        raise invalid(f"'{name}' must be {wanted}, not {value}", name)
    return value


def _sampling_options(body: dict) -> dict:
    max_tokens = _typed(body, "max_completion_tokens", int, _typed(body, "max_tokens", int))
    temperature = _typed(body, "temperature", float)
    top_p = _typed(body, "top_p", float)
    top_k = _typed(body, "top_k", int)
    penalty = _typed(body, "repetition_penalty", float)
    _in_range("max_tokens", max_tokens, max_tokens is not None and max_tokens >= 1, "at least 1")
    _in_range("temperature", temperature, temperature is not None and 0 <= temperature <= 2, "between 0 and 2")
    _in_range("top_p", top_p, top_p is not None and 0 < top_p <= 1, "above 0 and at most 1")
    _in_range("top_k", top_k, top_k is not None and top_k >= 0, "0 (off) or more")
    _in_range("repetition_penalty", penalty, penalty is not None and penalty > 0, "above 0")
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop if stop is not None else []
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops) or len(stops) > 4:
        raise invalid("'stop' must be a string or an array of at most 4 strings", "stop")
    return {"max_new_tokens": max_tokens, "temperature": temperature, "top_p": top_p, "top_k": top_k,
            "repetition_penalty": penalty, "seed": _typed(body, "seed", int), "stop": [s for s in stops if s]}


def _image_options(body: dict) -> dict:
    """The request's pixel budget (checked against the bundle's processor when its images are planned)."""
    options = {name: _typed(body, name, int) for name in IMAGE_OPTIONS}
    for name, value in options.items():
        _in_range(name, value, value is not None and value >= 1, "a positive pixel count, e.g. 200704 (256 tokens)")
    return {k: v for k, v in options.items() if v is not None}


def _refuse_unsupported(body: dict) -> None:
    """Features that would change the answer and that this server does not have: say so, never ignore."""
    if _typed(body, "n", int, 1) != 1:
        raise invalid("'n' must be 1: this server answers one choice per request", "n")
    for name in ("frequency_penalty", "presence_penalty"):
        if _typed(body, name, float, 0.0) != 0.0:
            raise invalid(f"'{name}' is not supported; use 'repetition_penalty' (e.g. 1.1) instead", name)
    if _typed(body, "logprobs", bool, False) or body.get("top_logprobs") is not None:
        raise invalid("'logprobs' is not supported by this server", "logprobs")
    for name in ("tools", "functions"):
        if _typed(body, name, list, []):
            raise invalid(f"'{name}': tool calling is not supported by this server", name)
    if body.get("logit_bias"):
        raise invalid("'logit_bias' is not supported by this server", "logit_bias")
    response_format = _typed(body, "response_format", dict, {"type": "text"})
    if response_format.get("type") != "text":
        raise invalid("'response_format' must be {\"type\": \"text\"}: structured output is not supported",
                      "response_format")


def _text_of(content: Any, param: str, part_types: tuple[str, ...] = ("text",)) -> str:
    """Plain text of a system or assistant message (a string or an array of text parts)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise invalid(f"{param} must be a string or an array of text parts", param)
    texts = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in part_types or not isinstance(part.get(kind), str):
            raise invalid(f"{param}[{i}] must be a text part {{\"type\": \"text\", \"text\": \"...\"}}", f"{param}[{i}]")
        texts.append(part[kind])
    return "\n".join(texts)


def _user_parts(content: Any, param: str, limits: Limits) -> list[Part]:
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        raise invalid(f"{param} must be a string or an array of content parts", param)
    parts: list[Part] = []
    for i, part in enumerate(content):
        where = f"{param}[{i}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append(part["text"])
        elif kind == "image_url":
            image_url = part.get("image_url")
            url = image_url.get("url") if isinstance(image_url, dict) else image_url
            if not isinstance(url, str):
                raise invalid(f"{where}.image_url must be {{\"url\": \"data:image/...;base64,...\"}}", where)
            parts.append(read_image_url(url, f"{where}.image_url", limits.allow_file_urls))
        else:
            raise invalid(f"{where} must be a text part or an image_url part, not {json.dumps(part)[:60]}", where)
    return parts


def _conversation(messages: list, limits: Limits) -> tuple[str | None, list[tuple[UserTurn, str]], UserTurn]:
    system: list[str] = []
    turns: list[tuple[str, Any]] = []  # ("user", [parts]) | ("assistant", text), merged
    n_images = 0
    for i, message in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise invalid(f"{param} must be an object with a 'role' and a 'content'", param)
        role, content = message["role"], message.get("content")
        if role in ("system", "developer"):
            if turns:
                raise invalid(f"{param}: a system message must come before the conversation's first user message", param)
            system.append(_text_of(content, f"{param}.content"))
        elif role == "user":
            parts = _user_parts(content, f"{param}.content", limits)
            n_images += sum(isinstance(p, RequestImage) for p in parts)
            if n_images > limits.max_images:
                raise invalid(f"the request has more than {limits.max_images} images, this server's limit; send "
                              "fewer images or start the server with a larger --max-images", param, "too_many_images")
            if turns and turns[-1][0] == "user":
                turns[-1][1].extend(parts)  # consecutive user messages are one turn
            else:
                turns.append(("user", parts))
        elif role == "assistant":
            if message.get("tool_calls") or message.get("function_call"):
                raise invalid(f"{param}: tool calls are not supported by this server", param)
            if not turns or turns[-1][0] != "user":
                raise invalid(f"{param}: an assistant message must follow a user message (the conversation starts "
                              "with a user message and alternates)", param)
            turns.append(("assistant", _text_of(content if content is not None else "", f"{param}.content",
                                                ("text", "refusal"))))
        elif role in ("tool", "function"):
            raise invalid(f"{param}: tool messages are not supported by this server", param)
        else:
            raise invalid(f"{param}: unknown role {role!r}; use system, user or assistant", param)
    if not turns or turns[-1][0] != "user":
        raise invalid("the last message must be from the user (the server answers it)", "messages")
    exchanges = [(UserTurn(tuple(turns[k][1])), turns[k + 1][1]) for k in range(0, len(turns) - 1, 2)]
    return ("\n".join(system) if system else None), exchanges, UserTurn(tuple(turns[-1][1]))


def parse_chat_request(raw: bytes, limits: Limits) -> ChatRequest:
    """The request body (bytes) -> ChatRequest; raises ApiError(400) naming the first problem."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid(f"the request body is not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise invalid("the request body must be a JSON object")
    _typed(body, "model", str)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("'messages' must be a non-empty array of messages", "messages")
    options = _sampling_options(body)
    _refuse_unsupported(body)
    stream = _typed(body, "stream", bool, False)
    stream_options = _typed(body, "stream_options", dict, {})
    include_usage = _typed(stream_options, "include_usage", bool, False)
    system, exchanges, question = _conversation(messages, limits)
    return ChatRequest(system, exchanges, question, options, image_options=_image_options(body), stream=stream,
                       include_usage=include_usage)
