"""``edgevlm serve``: an OpenAI-compatible chat-completions server for one bundle.

    edgevlm serve out/minicpmv --port 8080            # or: edgevlm.serve("out/minicpmv", port=8080)
    client = openai.OpenAI(base_url="http://127.0.0.1:8080/v1", api_key="unused")

Files, one purpose each: app.py (routes, API key, body limit, error bodies), schema.py (request
checks), image_urls.py (data:/file:// images), openai_format.py (response and chunk shapes),
conversations.py (live conversations reused across requests), worker.py (the thread that owns the
model, the bounded queue), metrics.py (Prometheus text).
"""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

from ..errors import EdgeVLMError

__all__ = ["serve", "create_app", "ServeOptions"]


def _require_server_packages() -> None:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise EdgeVLMError(f"edgevlm serve needs the server packages ({exc}); install them: "
                           "pip install 'edgevlm[serve]'") from None


def create_app(vlm, options=None):
    """The ASGI app serving an already loaded ``VLM`` (for embedding in your own ASGI server)."""
    _require_server_packages()
    from .app import create_app as _create_app

    return _create_app(vlm, options)


def __getattr__(name: str):
    if name == "ServeOptions":  # lazily: app.py imports starlette
        _require_server_packages()
        from .app import ServeOptions

        return ServeOptions
    raise AttributeError(name)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(bundle: str | Path, host: str = "127.0.0.1", port: int = 8080, api_key: str | None = None,
          device: str = "auto", allow_file_urls: bool = False, *, max_queue: int = 16, max_body_mb: int = 32,
          max_images: int = 8, conversations: int = 8, vision_cache_mb: int = 256, model_name: str | None = None,
          threads: int | None = None, log_level: str = "info") -> None:
    """Load BUNDLE and serve it until interrupted (binds 127.0.0.1 unless told otherwise).

    ``conversations=0`` and ``vision_cache_mb=0`` switch off the reuse across requests (every
    request re-encodes its images and re-feeds its whole conversation: llama-server's behaviour
    with an mmproj loaded); useful only to measure what the reuse is worth.
    """
    _require_server_packages()
    import uvicorn

    import edgevlm

    from .app import ServeOptions, create_app as _create_app

    if max_queue < 1 or max_body_mb < 1 or max_images < 0 or conversations < 0 or vision_cache_mb < 0:
        raise EdgeVLMError("serve: max_queue and max_body_mb must be at least 1; max_images, conversations and "
                           "vision_cache_mb at least 0")
    log = logging.getLogger("edgevlm.serve")
    if not _is_loopback(host) and not api_key:
        log.warning("serving on %s without an API key: anyone who can reach this address can use the model; "
                    "pass --api-key", host)
    backend_options = {"threads": threads} if threads else {}
    vlm = edgevlm.load(str(bundle), device=device, vision_cache_mb=vision_cache_mb, **backend_options)
    options = ServeOptions(api_key=api_key, model_name=model_name, allow_file_urls=allow_file_urls,
                           max_queue=max_queue, max_body_bytes=max_body_mb << 20, max_images=max_images,
                           conversations=conversations)
    app = _create_app(vlm, options)
    print(f"edgevlm serve: {Path(bundle).name} on http://{host}:{port}/v1", flush=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
    finally:
        vlm.close()


from .._callable_module import make_callable  # noqa: E402

make_callable(__name__, "serve")
