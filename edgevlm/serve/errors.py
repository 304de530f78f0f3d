"""The one error type of the server: an HTTP status plus an OpenAI-style ``{"error": {...}}`` body.

Every refusal (bad JSON, a field of the wrong type, an undecodable image, a prompt over the
context, a full queue, a wrong API key) is raised as an ``ApiError`` and answered as such; the app
turns anything else into a 500 with a one-line body and keeps serving.
"""

from __future__ import annotations

from ..errors import EdgeVLMError, ImageError, PromptError

# OpenAI's error "type" for each status the server uses.
_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
          405: "invalid_request_error", 413: "invalid_request_error", 429: "rate_limit_error",
          500: "server_error", 503: "server_error"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": _TYPES.get(self.status, "invalid_request_error"),
                          "param": self.param, "code": self.code}}


def invalid(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    """A 400: the request itself is wrong; the message names the field and what to send instead."""
    return ApiError(400, message, param, code)


def from_runtime_error(exc: EdgeVLMError) -> ApiError:
    """Runtime refusals caused by the request (prompt over the context, bad image) are the client's 400;
    anything else the runtime raises at request time is the server's problem (500, still one line)."""
    if isinstance(exc, PromptError):
        return invalid(str(exc), "messages")
    if isinstance(exc, ImageError):
        return invalid(str(exc), "messages", "invalid_image")
    return ApiError(500, f"the model could not answer: {exc}")
