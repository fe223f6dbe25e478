"""The question and the picture of a chat request.

The question is the text of the last user turn. The picture is the last `image_url` part in the
conversation, so a follow-up turn without a new image asks about the same one (and hits the
caches). Pictures arrive as `data:` URIs or raw base64; `file://` only under
--allow-media-dir; http(s) is refused: the server never fetches anything (offline by default).
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from urllib.parse import unquote, urlparse

import edge_et
from edge_et.serve.failures import ApiError
from edge_et.serve.schema import ChatRequest, ImagePart, TextPart


def question_of(request: ChatRequest) -> str:
    """The last user turn's text parts, joined by new lines."""
    users = [message for message in request.messages if message.role == "user"]
    if not users:
        raise ApiError(400, "the conversation has no user turn: the question is its last one",
                       param="messages")
    content = users[-1].content
    if isinstance(content, str):
        text = content
    else:
        text = "\n".join(part.text for part in content or [] if isinstance(part, TextPart))
    if not text.strip():
        raise ApiError(400, "the last user turn has no text: it is the question", param="messages")
    return text


def image_url_of(request: ChatRequest) -> str:
    """The URL of the conversation's last image part."""
    for message in reversed(request.messages):
        if isinstance(message.content, list):
            for part in reversed(message.content):
                if isinstance(part, ImagePart):
                    return part.image_url.url
    raise ApiError(400, "no image in the conversation: add an image_url part (a data: URI)",
                   param="messages")


def image_bytes(url: str, media_dir: Path | None) -> bytes:
    """The encoded image file an image URL names, or a 400 saying why not."""
    scheme = url.split(":", 1)[0].lower() if ":" in url[:16] else ""
    if scheme == "data":
        return _data_uri(url)
    if scheme in ("http", "https"):
        raise ApiError(400, "remote image URLs are not fetched (the server is offline by default): "
                            "send the image as a data: URI or base64", param="messages",
                       code="remote_url_refused")
    if scheme == "file":
        return _local_file(url, media_dir)
    if scheme:
        raise ApiError(400, f"unsupported image URL scheme {scheme!r}: use a data: URI",
                       param="messages")
    return _base64(url)


def load_picture(url: str, media_dir: Path | None, max_pixels: int) -> edge_et.LoadedImage:
    """The decoded picture; a bad or oversized one is a 400 with edge-et's one-line reason."""
    data = image_bytes(url, media_dir)
    try:
        return edge_et.decode_image(data, max_pixels=max_pixels)
    except edge_et.InputError as error:
        raise ApiError(400, str(error), param="messages", code="invalid_image") from None


def _data_uri(url: str) -> bytes:
    header, comma, payload = url.partition(",")
    if not comma:
        raise ApiError(400, "malformed data: URI (no comma before the data)", param="messages")
    if not header.lower().endswith(";base64"):
        raise ApiError(400, "data: URIs must be base64 (data:image/png;base64,...)",
                       param="messages")
    return _base64(payload)


def _base64(text: str) -> bytes:
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "the image is neither a data: URI nor valid base64",
                       param="messages", code="invalid_image") from None
    if not data:
        raise ApiError(400, "the image is empty", param="messages", code="invalid_image")
    return data


def _local_file(url: str, media_dir: Path | None) -> bytes:
    if media_dir is None:
        raise ApiError(400, "file:// images are refused: start the server with --allow-media-dir",
                       param="messages", code="file_url_refused")
    parsed = urlparse(url)
    if parsed.netloc not in ("", "localhost"):
        raise ApiError(400, "file:// URLs must name a local path", param="messages")
    root = media_dir.resolve()
    path = Path(unquote(parsed.path)).resolve()  # symlinks and .. resolved before the check
    if not path.is_relative_to(root):
        raise ApiError(400, "the image path is outside --allow-media-dir", param="messages",
                       code="path_outside_media_dir")
    if not path.is_file():
        raise ApiError(400, f"no image file at {parsed.path!r} under --allow-media-dir",
                       param="messages")
    try:
        return path.read_bytes()
    except OSError as error:
        raise ApiError(400, f"cannot read the image: {error.strerror}", param="messages") from None
