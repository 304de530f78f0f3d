"""An ``image_url`` of a chat message -> the image's encoded bytes and their digest.

Only what needs no network: base64 ``data:`` URLs always, local ``file://`` paths when the server
was started with ``--allow-file-urls``. http(s) URLs are refused (the server never fetches).

Only the header is read here (what is not an image at all is a 400 before the request is queued).
The pixels are decoded by the runtime, and only for turns the model is actually fed: a follow-up
question resends the whole conversation, and the images of turns a live conversation already holds
are never decoded again. A truncated image is refused by the runtime's decoder, also as a 400.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from dataclasses import dataclass, field
from urllib.parse import unquote, urlparse

from PIL import Image, UnidentifiedImageError

from .errors import invalid


@dataclass(frozen=True)
class RequestImage:
    digest: str  # sha256 of the encoded bytes: the image's identity in conversation keys
    data: bytes = field(repr=False)  # encoded (JPEG, PNG, ...), as the runtime's load_image takes them


def _data_url_bytes(url: str, param: str) -> bytes:
    header, comma, payload = url.partition(",")
    if not comma or not header.endswith(";base64"):
        raise invalid(f"{param}: a data: URL must be base64, like data:image/png;base64,iVBOR...", param)
    try:
        try:
            return base64.b64decode(payload, validate=True)
        except binascii.Error:  # some clients wrap base64 in lines
            return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        raise invalid(f"{param}: the data: URL's payload is not valid base64", param) from None


def _file_url_bytes(url: str, param: str, allow_file_urls: bool) -> bytes:
    if not allow_file_urls:
        raise invalid(f"{param}: file:// image URLs are off on this server; send the image as a base64 data: URL "
                      "or start the server with --allow-file-urls", param)
    parsed = urlparse(url)
    if parsed.netloc not in ("", "localhost"):
        raise invalid(f"{param}: file:// URLs must name a local path (file:///path/to/image.png)", param)
    path = unquote(parsed.path)
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise invalid(f"{param}: cannot read {path} ({exc.strerror or exc}); check the path", param) from None


def read_image_url(url: str, param: str, allow_file_urls: bool) -> RequestImage:
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "data":
        data = _data_url_bytes(url, param)
    elif scheme == "file":
        data = _file_url_bytes(url, param, allow_file_urls)
    elif scheme in ("http", "https"):
        raise invalid(f"{param}: this server does not fetch remote images (no network access); send the image "
                      "as a base64 data: URL", param)
    else:
        raise invalid(f"{param}: unsupported image URL {url[:40]!r}; send a base64 data: URL", param)
    try:
        with Image.open(io.BytesIO(data)):  # reads the header only
            pass
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise invalid(f"{param}: not a readable image ({exc}); send a JPEG, PNG, WebP, ... file", param,
                      "invalid_image") from None
    return RequestImage(hashlib.sha256(data).hexdigest(), data)
