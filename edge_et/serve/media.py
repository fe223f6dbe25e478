"""The conversation and the pictures of a chat request.

The question is the text of the last user turn; the turns before it are the conversation the
reasoner sees (runtime/chat.py). A turn is about the most recent `image_url` part at that point
of the conversation, so a follow-up turn without a new image asks about the same one (and hits
the caches); before any picture a turn is text only. Pictures arrive as `data:` URIs or raw
base64; `file://` only under --allow-media-dir; http(s) is refused: the server never fetches
anything (offline by default).
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from urllib.parse import unquote, urlparse

import edge_et
from edge_et.serve.failures import ApiError
from edge_et.serve.schema import ChatRequest, ImagePart, TextPart


def conversation_of(
    request: ChatRequest, media_dir: Path | None, max_pixels: int
) -> tuple[list[dict], str]:
    """The request's messages as `Pipeline.chat` takes them (pictures decoded, each distinct URL
    once) and the image detail of the latest picture; a 400 for a bad turn or picture."""
    question_of(request)  # the last user turn is the question: a 400 before any decoding
    pictures: dict[str, edge_et.LoadedImage] = {}
    detail = "auto"
    messages = []
    for message in request.messages:
        turn = {"role": message.role, "content": text_of(message.content)}
        for part in message.content if isinstance(message.content, list) else []:
            if isinstance(part, ImagePart) and message.role == "user":
                url = part.image_url.url
                if url not in pictures:
                    pictures[url] = load_picture(url, media_dir, max_pixels)
                turn["image"], detail = pictures[url], part.image_url.detail or "auto"
        if message.role == "assistant" and message.extraction:
            turn["extraction"] = message.extraction
        messages.append(turn)
    return messages, detail


def text_of(content) -> str:
    """A message's text parts, joined by new lines."""
    if isinstance(content, str):
        return content
    return "\n".join(part.text for part in content or [] if isinstance(part, TextPart))


def question_of(request: ChatRequest) -> str:
    """The last user turn's text parts, joined by new lines."""
    if request.messages[-1].role != "user":
        raise ApiError(
            400,
            "the conversation must end with a user turn: it is the question",
            param="messages",
            code="invalid_messages",
        )
    text = text_of(request.messages[-1].content)
    if not text.strip():
        raise ApiError(
            400,
            "the last user turn has no text: it is the question",
            param="messages",
            code="invalid_messages",
        )
    return text


def image_bytes(url: str, media_dir: Path | None) -> bytes:
    """The encoded image file an image URL names, or a 400 saying why not."""
    scheme = url.split(":", 1)[0].lower() if ":" in url[:16] else ""
    if scheme == "data":
        return _data_uri(url)
    if scheme in ("http", "https"):
        raise ApiError(
            400,
            "remote image URLs are not fetched (the server is offline by default): "
            "send the image as a data: URI or base64",
            param="messages",
            code="remote_url_refused",
        )
    if scheme == "file":
        return _local_file(url, media_dir)
    if scheme:
        raise ApiError(
            400,
            f"unsupported image URL scheme {scheme!r}: use a data: URI",
            param="messages",
            code="invalid_image",
        )
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
        raise ApiError(
            400,
            "malformed data: URI (no comma before the data)",
            param="messages",
            code="invalid_image",
        )
    if not header.lower().endswith(";base64"):
        raise ApiError(
            400,
            "data: URIs must be base64 (data:image/png;base64,...)",
            param="messages",
            code="invalid_image",
        )
    return _base64(payload)


def _base64(text: str) -> bytes:
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(
            400,
            "the image is neither a data: URI nor valid base64",
            param="messages",
            code="invalid_image",
        ) from None
    if not data:
        raise ApiError(400, "the image is empty", param="messages", code="invalid_image")
    return data


def _local_file(url: str, media_dir: Path | None) -> bytes:
    if media_dir is None:
        raise ApiError(
            400,
            "file:// images are refused: start the server with --allow-media-dir",
            param="messages",
            code="file_url_refused",
        )
    parsed = urlparse(url)
    if parsed.netloc not in ("", "localhost"):
        raise ApiError(
            400, "file:// URLs must name a local path", param="messages", code="invalid_image"
        )
    root = media_dir.resolve()
    path = Path(unquote(parsed.path)).resolve()  # symlinks and .. resolved before the check
    if not path.is_relative_to(root):
        raise ApiError(
            400,
            "the image path is outside --allow-media-dir",
            param="messages",
            code="path_outside_media_dir",
        )
    if not path.is_file():
        raise ApiError(
            400,
            f"no image file at {parsed.path!r} under --allow-media-dir",
            param="messages",
            code="invalid_image",
        )
    try:
        return path.read_bytes()
    except OSError as error:
        raise ApiError(
            400, f"cannot read the image: {error.strerror}", param="messages", code="invalid_image"
        ) from None
