"""What every request passes before a route: the body limit, the API key, the request count.

The body limit is an ASGI middleware so that it holds for chunked uploads too: a declared
Content-Length over the limit is refused before a byte is read, and a body that grows past it
while being read stops there (413, OpenAI error JSON, nothing buffered beyond the limit).
"""

from __future__ import annotations

import hmac
import json

from fastapi import Request

from edge_et.serve.failures import ApiError
from edge_et.serve.metrics import Metrics

KNOWN_PATHS = ("/v1/chat/completions", "/v1/models", "/health", "/metrics", "/openapi.json", "/")


class Gate:
    """ASGI middleware: 413 past `max_body` bytes; counts responses by path and status."""

    def __init__(self, app, *, max_body: int, metrics: Metrics):
        self.app, self.max_body, self.metrics = app, max_body, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"] if scope["path"] in KNOWN_PATHS else "other"
        status = {"code": 500}

        async def counted_send(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            declared = _content_length(scope)
            if declared is not None and declared > self.max_body:
                await self._too_large(counted_send)
                return
            await self.app(scope, self._limited(receive), counted_send)
        finally:
            self.metrics.requests.labels(path, str(status["code"])).inc()

    def _limited(self, receive):
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    self.metrics.rejections.labels("too_large").inc()
                    raise ApiError(413, self._message(), code="request_too_large")
            return message

        return limited

    async def _too_large(self, send) -> None:
        self.metrics.rejections.labels("too_large").inc()
        body = json.dumps(ApiError(413, self._message(), code="request_too_large").body()).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _message(self) -> str:
        return (
            f"the request body is over the server's limit of {self.max_body:,} bytes "
            "(--max-body); send a smaller image"
        )


def _content_length(scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def key_checker(api_key: str | None, metrics: Metrics):
    """A FastAPI dependency: `Authorization: Bearer KEY` when the server has a key."""

    async def require_key(request: Request) -> None:
        if api_key is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), api_key.encode()
        ):
            metrics.rejections.labels("unauthorized").inc()
            raise ApiError(
                401,
                "missing or wrong API key: send 'Authorization: Bearer KEY'",
                code="invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return require_key
