"""DNS rebinding: which `Host` and `Origin` headers the server answers.

A web page whose host name an attacker re-points at 127.0.0.1 runs in the user's browser with
that name as its origin: the browser then lets it read this server's replies as its own (its
`Host` header carries the attacker's name). Ollama fixed the same by checking `Host` and
`Origin`; so does this server:

- `Host` must be a loopback name (`localhost`, `*.localhost`) or an IP address (a page cannot
  rebind an address, only a name), unless `--allowed-hosts` names it (`*`: any) or the server
  has an API key (a page cannot know the key);
- an `Origin` header, which browsers send with cross-site and POST requests, must be the
  server's own (same host and port as `Host`) or one of the `--cors-origin` list.

A refusal is a 403 with OpenAI's error JSON (`host_not_allowed`, `origin_not_allowed`).
"""

from __future__ import annotations

import ipaddress
import json
from urllib.parse import urlsplit

from edge_et.serve.failures import ApiError

LOOPBACK_NAMES = ("localhost",)


class HostCheck:
    """ASGI middleware: 403 for a `Host` or `Origin` this server does not answer."""

    def __init__(self, app, *, allowed_hosts: list[str], cors_origins: list[str], keyed: bool):
        self.app = app
        self.any_host = keyed or "*" in allowed_hosts
        self.allowed_hosts = {host.lower().rstrip(".") for host in allowed_hosts}
        self.origins = {origin.rstrip("/").lower() for origin in cors_origins}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {
            name: value.decode("latin-1")
            for name, value in scope.get("headers", ())
            if name in (b"host", b"origin")
        }
        host = headers.get(b"host", "")
        refusal = self._refusal(host, headers.get(b"origin"))
        if refusal is not None:
            body = json.dumps(refusal.body()).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 403,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)

    def _refusal(self, host: str, origin: str | None) -> ApiError | None:
        name = host_name(host)
        if not (self.any_host or allowed_name(name) or name in self.allowed_hosts):
            return ApiError(
                403,
                f"the Host {name!r} is not allowed (DNS rebinding protection): "
                "use 127.0.0.1 or localhost, or start the server with "
                f"--allowed-hosts {name} (or an API key)",
                code="host_not_allowed",
            )
        if origin is None:
            return None
        given = origin.rstrip("/").lower()
        if given in self.origins or "*" in self.origins or _same_origin(given, host):
            return None
        return ApiError(
            403,
            f"the Origin {origin!r} is not allowed: pages of other origins may "
            "use this server only if started with --cors-origin for them",
            code="origin_not_allowed",
        )


def host_name(host: str) -> str:
    """The name part of a Host header (no port; an IPv6 address without brackets), lowercase."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host[1:]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def allowed_name(name: str) -> bool:
    """A loopback name or an IP address: no page can rebind these to another server."""
    name = name.rstrip(".")
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    """Whether the server would listen on loopback only (a loopback name or address)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _same_origin(origin: str, host: str) -> bool:
    """Whether `origin` (scheme://host[:port]) names the host and port the request went to."""
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    default = {"http": "80", "https": "443"}[parts.scheme]
    return _with_port(parts.netloc, default) == _with_port(host.strip().lower(), default)


def _with_port(netloc: str, default: str) -> str:
    if netloc.startswith("["):
        return netloc if "]:" in netloc else netloc + ":" + default
    return netloc if netloc.count(":") == 1 else netloc + ":" + default
