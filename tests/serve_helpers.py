"""Helpers for tests/test_serve.py: start a real `edgevlm serve` on 127.0.0.1 and talk raw HTTP to it."""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m edgevlm.cli serve BUNDLE ...` in a subprocess, its log in a file."""

    def __init__(self, bundle: Path, log: Path, *args: str):
        self.port = free_port()
        self.log_path = log
        self._log = open(log, "w")
        self.process = subprocess.Popen([sys.executable, "-m", "edgevlm.cli", "serve", str(bundle), "--port",
                                         str(self.port), *args], stdout=self._log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited at start:\n{self.log()}")
            try:
                if request(self.port, "GET", "/health")[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the server did not answer /health within 120 s:\n{self.log()}")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


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
