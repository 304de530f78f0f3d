"""Helpers for tests/test_serve.py: start a real `edgevlm serve` on 127.0.0.1 and talk raw HTTP to it."""

from __future__ import annotations

import base64
import http.client
import io
import json
import sys
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_serve import ServerProcess, ours  # noqa: E402


def start_server(bundle: Path, log: Path, *args: str):
    """`python -m edgevlm.cli serve BUNDLE --device cpu ...` on a free 127.0.0.1 port, its output in ``log``
    (the benchmark's launcher: benchmarks/bench_serve.py)."""
    return ServerProcess(ours(bundle, 2, *args), log)


def request(port: int, method: str, path: str, body: bytes | dict | None = None,
            headers: dict | None = None) -> tuple[int, bytes]:
    """One raw HTTP request (for what the openai client cannot send: broken JSON, no key, ...)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def image_message(image: Image.Image | str, text: str) -> dict:
    url = image if isinstance(image, str) else data_url(image)
    return {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                        {"type": "text", "text": text}]}


def metric(text: str, name: str) -> float:
    """One unlabelled sample from Prometheus text."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise KeyError(name)
