"""The ASGI app (Starlette): routes, API-key check, body-size limit, errors in OpenAI's shape.

Routes: POST /v1/chat/completions, GET /v1/models, GET /v1/models/{id}, GET /health, GET /metrics.
The handlers only parse, queue and format; the model runs in the worker's thread (worker.py).
"""

from __future__ import annotations

import asyncio
import hmac
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from ..runtime import VLM
from .errors import ApiError
from .metrics import Metrics, resident_memory_bytes
from .openai_format import DONE, Completion, model_card, sse
from .schema import Limits, parse_chat_request
from .worker import Answer, Job, ModelWorker


@dataclass
class ServeOptions:
    api_key: str | None = None  # when set, every route but /health needs "Authorization: Bearer KEY"
    model_name: str | None = None  # the id /v1/models reports (default: the bundle folder's name)
    allow_file_urls: bool = False  # let image_url be file:///local/path (off: the server reads no files)
    max_queue: int = 16  # requests waiting for the model; one more gets a 429
    max_body_bytes: int = 32 << 20  # larger bodies get a 413 (base64 images are the bulk)
    max_images: int = 8  # images in one request, over all its messages
    conversations: int = 8  # live conversations kept for reuse (0: every request starts from scratch)


class ClientGone(Exception):
    """The client disconnected before its answer was complete."""


class ApiKeyMiddleware:
    """Plain ASGI (not BaseHTTPMiddleware, which would buffer streams): 401 unless the key matches."""

    def __init__(self, app, api_key: str | None):
        self.app, self.key = app, (api_key or "").encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and self.key and scope["path"] != "/health":
            auth = dict(scope["headers"]).get(b"authorization", b"")
            scheme, _, token = auth.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self.key):
                error = ApiError(401, "missing or wrong API key; send the header 'Authorization: Bearer KEY' "
                                      "(the key the server was started with)", code="invalid_api_key")
                response = JSONResponse(error.body(), 401, headers={"WWW-Authenticate": "Bearer"})
                return await response(scope, receive, send)
        await self.app(scope, receive, send)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with a 413 as soon as it is known to be over ``limit`` bytes."""
    too_large = ApiError(413, f"the request body is over this server's limit of {limit >> 20} MB; send smaller "
                              "images or start the server with a larger --max-body-mb", code="body_too_large")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def _until_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _next_event(job: Job, disconnect: asyncio.Future) -> object:
    """The job's next event; if the client disconnects first, cancel the job (the model is freed)."""
    getter = asyncio.ensure_future(job.events.get())
    done, _ = await asyncio.wait({getter, disconnect}, return_when=asyncio.FIRST_COMPLETED)
    if getter in done:
        return getter.result()
    getter.cancel()
    job.cancel()
    raise ClientGone


async def _event_stream(job: Job, first: object, completion: Completion, include_usage: bool):
    """Server-sent events in OpenAI's chunk format. Starlette cancels this generator when the client
    disconnects; the ``finally`` then cancels the job, which stops generating at the next token."""
    try:
        yield completion.chunk({"role": "assistant", "content": ""}, include_usage=include_usage)
        event = first
        while isinstance(event, str):
            yield completion.chunk({"content": event}, include_usage=include_usage)
            event = await job.events.get()
        if isinstance(event, ApiError):  # after the headers went out: an error event, as OpenAI sends
            yield sse(event.body())
        else:
            yield completion.chunk({}, event.finish_reason, include_usage=include_usage)
            if include_usage:
                yield completion.usage_chunk(event.usage, event.timings)
        yield DONE
    finally:
        job.cancel()  # a no-op once the job has ended


def create_app(vlm: VLM, options: ServeOptions | None = None) -> Starlette:
    options = options or ServeOptions()
    metrics = Metrics()
    worker = ModelWorker(vlm, metrics, options.max_queue, options.conversations)
    name, created = options.model_name or vlm.bundle.name, int(time.time())
    limits = Limits(options.max_images, options.allow_file_urls)
    for gauge, help_text, read in (
            ("edgevlm_queue_depth", "Requests waiting for the model.", lambda: worker.waiting),
            ("edgevlm_busy", "1 while the model is answering a request.", lambda: float(worker.busy)),
            ("edgevlm_live_conversations", "Conversations kept for reuse.", lambda: len(worker.conversations)),
            ("edgevlm_vision_cache_hits_total", "Images whose features came from the vision cache.",
             lambda: vlm.vision_cache.hits),
            ("edgevlm_vision_cache_misses_total", "Images run through the vision encoder.",
             lambda: vlm.vision_cache.misses),
            ("process_resident_memory_bytes", "Resident memory of the server process.", resident_memory_bytes)):
        metrics.gauge(gauge, help_text, read)

    async def chat_completions(request: Request) -> Response:
        raw = await read_body(request, options.max_body_bytes)
        parsed = await run_in_threadpool(parse_chat_request, raw, limits)  # base64 and JSON off the event loop
        job = Job(parsed, asyncio.get_running_loop())
        worker.submit(job)
        disconnect = asyncio.ensure_future(_until_disconnect(request))
        try:
            first = await _next_event(job, disconnect)
            if isinstance(first, ApiError):
                raise first
            completion = Completion(name)
            if parsed.stream:
                return StreamingResponse(_event_stream(job, first, completion, parsed.include_usage),
                                         media_type="text/event-stream",
                                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
            event, text = first, []
            while isinstance(event, str):
                text.append(event)
                event = await _next_event(job, disconnect)
            if isinstance(event, ApiError):
                raise event
            assert isinstance(event, Answer)
            return JSONResponse(completion.message("".join(text), event.finish_reason, event.usage, event.timings))
        except ClientGone:
            return Response(status_code=499)  # nobody reads it; counted as nginx's "client closed request"
        finally:
            disconnect.cancel()  # the stream response listens for disconnects itself

    async def counted(request: Request) -> Response:
        try:
            response = await chat_completions(request)
        except ApiError as exc:
            metrics.count_request(exc.status)
            raise
        except Exception:
            metrics.count_request(500)
            raise
        metrics.count_request(response.status_code)
        return response

    async def list_models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [model_card(name, created)]})

    async def get_model(request: Request) -> Response:
        if request.path_params["model"] != name:
            raise ApiError(404, f"no model {request.path_params['model']!r}; this server has {name!r}",
                           "model", "model_not_found")
        return JSONResponse(model_card(name, created))

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": name, "waiting": worker.waiting, "busy": worker.busy})

    async def prometheus(request: Request) -> Response:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    @asynccontextmanager
    async def lifespan(app):
        worker.start()
        yield
        worker.stop()

    app = Starlette(
        routes=[Route("/v1/chat/completions", counted, methods=["POST"]),
                Route("/v1/models", list_models), Route("/v1/models/{model:path}", get_model),
                Route("/health", health), Route("/metrics", prometheus)],
        middleware=[Middleware(ApiKeyMiddleware, api_key=options.api_key)],
        exception_handlers={ApiError: _api_error, HTTPException: _http_error, Exception: _internal_error},
        lifespan=lifespan)
    app.state.worker, app.state.metrics = worker, metrics
    return app


async def _api_error(request: Request, exc: ApiError) -> Response:
    headers = {"Retry-After": "1"} if exc.status == 429 else None
    return JSONResponse(exc.body(), exc.status, headers=headers)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    message = {404: f"no route {request.url.path}; this server has POST /v1/chat/completions, GET /v1/models, "
                    "GET /health and GET /metrics",
               405: f"{request.method} is not allowed on {request.url.path}"}.get(exc.status_code, str(exc.detail))
    return JSONResponse(ApiError(exc.status_code, message).body(), exc.status_code)


async def _internal_error(request: Request, exc: Exception) -> Response:
    # Starlette logs the traceback on the server side; the client gets one line and the server keeps serving.
    return JSONResponse(ApiError(500, f"internal error ({type(exc).__name__}); the server log has the details").body(),
                        500)
