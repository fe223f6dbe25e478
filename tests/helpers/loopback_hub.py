"""A loopback Hugging Face hub: a real HTTP server on 127.0.0.1 that answers as huggingface.co does,
so the real `huggingface_hub` client (HF_ENDPOINT / `endpoint=`) downloads from it.

What huggingface_hub's file_download relies on, as the hub sends it:
- `HEAD /{repo}/resolve/{revision}/{file}`: `X-Repo-Commit` (the commit the revision names) always;
  a small file answers 200 with its git blob id as `ETag` and its `Content-Length`; an LFS file
  (models) answers 302 to the CDN with `X-Linked-Etag` = its sha256 and `X-Linked-Size`;
- `GET` of the resolve URL (small files) or of the CDN URL (LFS), honouring `Range: bytes=N-` with
  206 and `Content-Range`;
- errors carry `X-Error-Code` (RepoNotFound, EntryNotFound, RevisionNotFound, GatedRepo);
- `GET /api/models/{repo}/revision/{revision}?blobs=true`: the file list (`siblings` with
  `rfilename`, `size`, `blobId`, and `lfs` {sha256, size, pointerSize} for LFS files) and `sha`.

`modes[path]` misbehaves on purpose when the bytes of `path` are sent: drop_once / drop_always (send
half the body, then close), ignore_range (answer 200 with the whole file), stall (say nothing until
the client gives up), trickle (`trickle` = (slice bytes, pause s) at a time, so a client can be killed
mid-transfer), corrupt (flip the bytes but keep the size).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".gguf", ".safetensors", ".bin", ".pth")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def git_blob_id(data: bytes) -> str:
    """The id git gives a blob: the ETag the hub sends for a small (non-LFS) file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class LoopbackHub(ThreadingHTTPServer):
    """Files per (repo, path); `gated[repo]` is the token a gated repo requires."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[tuple[str, str], bytes] = {}
        self.lfs: set[tuple[str, str]] = set()
        self.gated: dict[str, str] = {}
        self.modes: dict[str, str] = {}
        self.log: list[dict] = []
        self.released = threading.Event()
        self.trickle = (1 << 20, 0.1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def add(self, repo: str, path: str, data: bytes, *, lfs: bool | None = None) -> None:
        """Serve `data` as `path` of `repo`; LFS by default for model files, as .gitattributes does."""
        self.files[(repo, path)] = data
        if lfs if lfs is not None else path.endswith(LFS_SUFFIXES):
            self.lfs.add((repo, path))
        else:
            self.lfs.discard((repo, path))

    def commit(self, repo: str) -> str:
        """The repo's one commit: changes when its files do, as a real commit would."""
        state = sorted((p, sha256(d)) for (r, p), d in self.files.items() if r == repo)
        return hashlib.sha1(json.dumps([repo, state]).encode()).hexdigest()

    def resolves(self, path: str) -> list[dict]:
        """The GET requests that sent (or began to send) the bytes of `path`."""
        return [r for r in self.log if r["kind"] == "bytes" and r["file"] == path]

    def sent(self, path: str) -> int:
        return sum(r["sent"] for r in self.resolves(path))

    def heads(self, path: str | None = None) -> list[dict]:
        return [r for r in self.log if r["kind"] == "head" and path in (None, r["file"])]

    def start(self) -> LoopbackHub:
        threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        self.released.set()
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: LoopbackHub
    protocol_version = "HTTP/1.1"  # keep-alive, as the hub: requests reuses the connection

    def log_message(self, *args):  # keep test output clean
        pass

    def do_HEAD(self):
        self._route(head=True)

    def do_GET(self):
        self._route(head=False)

    def _route(self, head: bool):
        path = urlsplit(self.path).path
        listing = re.fullmatch(r"/api/models/([^/]+/[^/]+)/revision/([^/]+)", path)
        resolve = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        cdn = re.fullmatch(r"/cdn/([^/]+/[^/]+)/([0-9a-f]{64})/(.+)", path)
        if listing:
            self._listing(listing.group(1))
        elif resolve:
            self._resolve(resolve.group(1), unquote(resolve.group(3)), head)
        elif cdn and (cdn.group(1), unquote(cdn.group(3))) in self.server.files:
            self._bytes(cdn.group(1), unquote(cdn.group(3)), head)
        else:
            self._error(404, "EntryNotFound", {"kind": "missing", "path": self.path})

    def _error(self, status: int, code: str, record: dict | None = None, repo: str | None = None):
        if record:
            self.server.log.append(record)
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", f"{code} (loopback hub)")
        if repo and code == "EntryNotFound":
            self.send_header("X-Repo-Commit", self.server.commit(repo))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _allowed(self, repo: str) -> bool:
        token = self.server.gated.get(repo)
        if token is None:
            return True
        if self.headers.get("Authorization") == f"Bearer {token}":
            return True
        self._error(401, "GatedRepo", {"kind": "denied", "repo": repo})
        return False

    def _known(self, repo: str) -> bool:
        if any(r == repo for r, _ in self.server.files):
            return True
        self._error(404, "RepoNotFound", {"kind": "missing", "path": self.path})
        return False

    def _listing(self, repo: str):
        if not (self._known(repo) and self._allowed(repo)):
            return
        siblings = []
        for (r, path), data in sorted(self.server.files.items()):
            if r != repo:
                continue
            entry = {"rfilename": path, "size": len(data), "blobId": git_blob_id(data)}
            if (r, path) in self.server.lfs:
                entry["lfs"] = {"sha256": sha256(data), "size": len(data), "pointerSize": 134}
            siblings.append(entry)
        body = json.dumps(
            {
                "_id": "0" * 24,
                "id": repo,
                "modelId": repo,
                "sha": self.server.commit(repo),
                "private": False,
                "gated": repo in self.server.gated,
                "siblings": siblings,
            }
        ).encode()
        self.server.log.append({"kind": "api", "repo": repo})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _resolve(self, repo: str, path: str, head: bool):
        if not (self._known(repo) and self._allowed(repo)):
            return
        if (repo, path) not in self.server.files:
            self._error(404, "EntryNotFound", {"kind": "missing", "path": self.path}, repo=repo)
            return
        data = self.server.files[(repo, path)]
        if head:
            self.server.log.append({"kind": "head", "file": path})
        if (repo, path) in self.server.lfs:
            self.send_response(302)
            self.send_header("Location", f"{self.server.url}/cdn/{repo}/{sha256(data)}/{path}")
            self.send_header("X-Repo-Commit", self.server.commit(repo))
            self.send_header(
                "ETag", f'"{git_blob_id(data)}"'
            )  # the pointer file's id, as the hub sends
            self.send_header("X-Linked-Etag", f'"{sha256(data)}"')
            self.send_header("X-Linked-Size", str(len(data)))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._bytes(repo, path, head)

    def _bytes(self, repo: str, path: str, head: bool):
        data, mode = self.server.files[(repo, path)], self.server.modes.get(path, "")
        if head:
            self.send_response(200)
            self.send_header("X-Repo-Commit", self.server.commit(repo))
            self.send_header("ETag", f'"{git_blob_id(data)}"')
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            return
        asked = self.headers.get("Range")
        record = {"kind": "bytes", "file": path, "range": asked, "sent": 0}
        self.server.log.append(record)
        if mode == "stall":
            self.server.released.wait(10)
            self.close_connection = True
            return
        start = (
            int(re.fullmatch(r"bytes=(\d+)-", asked).group(1))
            if asked and mode != "ignore_range"
            else 0
        )
        if start >= len(data) and asked:
            self._error(416, "RangeNotSatisfiable")
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("ETag", f'"{sha256(data)}"')
        self.end_headers()
        body = data[start:]
        if mode == "corrupt":
            body = bytes(b ^ 0xFF for b in body[:64]) + body[64:]
        if mode == "drop_always" or (mode == "drop_once" and len(self.server.resolves(path)) == 1):
            body = body[: len(body) // 2]
            self.close_connection = True  # then the handler returns and the connection closes short
        slice_size = self.server.trickle[0] if mode == "trickle" else len(body) or 1
        try:
            for offset in range(0, len(body), slice_size):
                self.wfile.write(body[offset : offset + slice_size])
                if mode == "trickle":
                    self.wfile.flush()
                    time.sleep(self.server.trickle[1])
        except (BrokenPipeError, ConnectionResetError):  # the client gave up early (or was killed)
            self.close_connection = True
            return
        record["sent"] = len(body)
