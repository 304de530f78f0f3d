"""Live conversations kept across requests, keyed by what they hold.

An OpenAI client sends the whole conversation with every request. The server keeps the last few
``Chat`` objects it answered (each holds its tokens and image features; the one that ran last
also holds the backend's KV cache) in an LRU keyed by a hash chain over the conversation: system
text, then each (user turn, assistant reply), where a user turn is its text parts and the sha256
of its images' bytes. A request whose messages before its last user turn hash to a stored key is a
continuation: only the new turn is fed. The request's pixel budget (``max_pixels`` / ``min_pixels``) is
part of the key: images encoded under another budget are other tokens, so such a request rebuilds.

A key is stored only when the Chat's KV cache holds exactly the reply text the client got, and
an assistant message that differs from what the server generated gives a different key: such a
conversation is rebuilt from its messages (images still come from the vision cache), never
answered from a cache that holds something else.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict

from ..processing.prompt import IMAGE, content_text
from ..runtime import VLM, Chat, GenerationResult
from .schema import ChatRequest, RequestImage, UserTurn


def _chain(previous: str, item: object) -> str:
    return hashlib.sha256(json.dumps([previous, item], ensure_ascii=False).encode()).hexdigest()


def conversation_keys(request: ChatRequest) -> list[str]:
    """keys[k]: the conversation after its first k exchanges (keys[0]: only the system text)."""
    keys = [_chain("", {"system": request.system, "image_options": request.image_options})]
    for turn, reply in request.exchanges:
        keys.append(_chain(keys[-1], [turn.identity, reply]))
    return keys


def answered_key(request: ChatRequest, reply: str) -> str:
    """The key of the conversation once the final user turn has been answered with ``reply``."""
    return _chain(conversation_keys(request)[-1], [request.question.identity, reply])


def holds_exactly(vlm: VLM, result: GenerationResult) -> bool:
    """Does the Chat now hold exactly the reply text the client receives?

    The runtime keeps every generated token (the last one pending), so a text cut at a stop string, or
    special tokens dropped from the text, make the held tokens differ from the text; then the
    conversation must not be continued from this Chat.
    """
    return vlm.tokenizer.decode(result.token_ids, skip_special_tokens=False) == result.text


def turn_input(vlm: VLM, turn: UserTurn) -> tuple[str, list]:
    """A user turn as ``Chat.stream`` takes it: text with one image marker where each image was, and
    the images. Parts are joined as the runtime joins a message's content list."""
    parts = [IMAGE if isinstance(p, RequestImage) else p for p in turn.parts]
    text = content_text(parts, vlm.layout, vlm.template.strip_content == "parts")
    return text, turn.images


class ConversationCache:
    def __init__(self, vlm: VLM, capacity: int = 8):
        self.vlm = vlm
        self.capacity = capacity
        self._chats: OrderedDict[str, Chat] = OrderedDict()

    def checkout(self, request: ChatRequest) -> tuple[Chat, int]:
        """(the Chat to continue, how many of the request's exchanges it already holds).

        The Chat is taken out of the cache: answering changes it. A fresh Chat holds 0 exchanges.
        """
        keys = conversation_keys(request)
        for done in range(len(request.exchanges), 0, -1):
            chat = self._chats.pop(keys[done], None)
            if chat is not None:
                return chat, done
        return self.vlm.chat(request.system), 0

    def checkin(self, key: str, chat: Chat) -> None:
        if self.capacity <= 0:
            return
        self._chats[key] = chat
        self._chats.move_to_end(key)
        while len(self._chats) > self.capacity:
            self._chats.popitem(last=False)

    def __len__(self) -> int:
        return len(self._chats)
