"""`edge-et bundle create NAME`: one bundle from a perception REF and a reasoning REF.

The steps, each skipped when its result is already there (so a second run downloads and converts
nothing): classify the REFs (edge_et.bundle.sources; nothing moves before every REF is understood
and the bundles home is writable), pull catalog models into the store (edge_et.bundle.pull, as
`edge-et pull` does) and convert Hugging Face checkpoints once through the export toolchain (a
`Converter` the caller hands in: this package never imports `export`; both steps live in
edge_et.bundle.stage_files), read every GGUF header for `arch`, `thinking` (the chat template
knows `<think>`) and `n_ctx`, then link the files into a scratch folder beside the bundle with
their sha256, write and validate `bundle.json`, and rename the folder into place: the bundles
home never holds half a bundle.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edge_et.bundle.catalog import (
    DEFAULT_STORE,
    Catalog,
    load_catalog,
)
from edge_et.bundle.home import bundles_home, check_name
from edge_et.bundle.manifest import BUNDLE_FORMAT, MANIFEST, Bundle, sha256_file
from edge_et.bundle.pairs import find_pair
from edge_et.bundle.sources import ROLES, Source, classify
from edge_et.bundle.stage_files import Converter, StageFiles, fetch_stage
from edge_et.core import atomic
from edge_et.core.paths import shown
from edge_et.errors import BundleError, EdgeEtError, InputError, MissingExtra
from edge_et.formats.gguf import GGUFInfo

# n_ctx: the model's trained context, capped where memory matters more than length (the same rule
# as `edge-et export`): an extraction is one image and a few hundred tokens; a thinking reasoner
# needs the paper's 4096-token think budget plus the question and the answer.
CTX_CAP = {"perception": 4096, "reasoning": 8192}
DEFAULT_CTX = 4096  # a GGUF whose header states no context length
# Decoding keys that belong to each stage: carried over from a source bundle with the stage.
STAGE_DECODING = {
    "perception": ("extract", "caption", "direct"),
    "reasoning": ("think", "reason", "hint"),
}
CREATOR = "edge-et bundle create"


@dataclass
class StageResult:
    """One stage of the created bundle, as `bundle create` reports it."""

    role: str
    ref: str
    kind: str
    model: str
    mmproj: str | None
    arch: str
    quant: str
    n_ctx: int
    thinking: bool | None
    bytes: int
    downloaded: bool = False
    converted: bool = False


@dataclass
class CreateReport:
    """What `bundle create` did: where the bundle is, its stages, and what moved."""

    name: str
    path: Path
    stages: list[StageResult] = field(default_factory=list)
    unchanged: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "path": str(self.path),
            "unchanged": self.unchanged,
            "downloaded": any(s.downloaded for s in self.stages),
            "converted": any(s.converted for s in self.stages),
            "seconds": round(self.seconds, 3),
            "stages": [asdict(s) for s in self.stages],
        }


def _writable_home(home: Path) -> None:
    """Refuse a bundles home we cannot write, before anything is downloaded."""
    try:
        home.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=home).close()
    except OSError as exc:
        raise BundleError(
            f"cannot write to the bundles home {shown(home)}: {exc.strerror or exc} "
            f"(set $EDGE_ET_BUNDLES to a writable folder)"
        ) from None


def _check_target(out: Path, force: bool) -> None:
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise InputError(
            f"{shown(out)} exists and is not a bundle folder; remove it or choose another name"
        )
    if not out.is_dir() or force:
        return
    try:
        made_by = json.loads((out / MANIFEST).read_text(encoding="utf-8")).get("created_by")
    except (OSError, ValueError, AttributeError):
        made_by = None
    if made_by != CREATOR and any(out.iterdir()):
        raise InputError(
            f"{shown(out)} exists and was not made by `bundle create`; pass --force to "
            "replace it, or choose another name"
        )


def _n_ctx(role: str, info: GGUFInfo) -> int:
    return max(16, min(info.context_length or DEFAULT_CTX, CTX_CAP[role]))


def _thinking(info: GGUFInfo) -> bool:
    """A thinking model's chat template opens or strips `<think>` (Qwen3, DeepSeek-R1 ...)."""
    return "<think>" in (info.chat_template or "")


def _link(src: Path, dst: Path) -> None:
    """Hardlink `src` as `dst` (model files are large and immutable), else copy it."""
    try:
        os.link(src, dst)
        return
    except OSError:
        pass  # another file system, or links not allowed: copy
    try:
        shutil.copyfile(src, dst)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EFBIG):
            raise BundleError(
                f"cannot copy {src.name} into the bundles home {shown(dst.parent.parent.parent)}: "
                f"{exc.strerror} (disk full?); nothing was kept"
            ) from None
        raise BundleError(
            f"cannot copy {src.name} into {shown(dst.parent.parent.parent)}: {exc.strerror or exc}"
        ) from None


def _names(files: dict[str, StageFiles]) -> dict[tuple[str, str], str]:
    """Each file's name in the bundle: its own, prefixed by its role where two would collide."""
    wanted = [
        (role, kind, path)
        for role, f in files.items()
        for kind, path in (("model", f.model), ("mmproj", f.mmproj))
        if path is not None
    ]
    plain = [path.name for _, _, path in wanted]
    return {
        (role, kind): path.name if plain.count(path.name) == 1 else f"{role}.{path.name}"
        for role, kind, path in wanted
    }


def _manifest(
    name: str,
    description: str,
    sources: dict[str, Source],
    files: dict[str, StageFiles],
    names: dict[tuple[str, str], str],
    digests: dict[str, str],
) -> dict:
    manifest: dict = {
        "format": BUNDLE_FORMAT,
        "name": name,
        "description": description,
        "created_by": CREATOR,
    }
    decoding: dict = {}
    for role in ROLES:
        if role not in files:
            continue
        got, source = files[role], sources[role]
        model = names[(role, "model")]
        stage: dict = {"backend": "llama.cpp", "model": model}
        listed = [model]
        if got.mmproj is not None:
            stage["mmproj"] = names[(role, "mmproj")]
            listed.append(stage["mmproj"])
        stage["arch"] = got.info.architecture
        if role == "reasoning":
            stage["thinking"] = _thinking(got.info)
        stage.update(
            n_ctx=_n_ctx(role, got.info),
            random_weights=got.random_weights,
            source=source.describe(),
            sha256={f: digests[f] for f in listed},
        )
        manifest[role] = stage
        carried = source.bundle_stage.get("decoding") or {}
        decoding.update({k: v for k, v in carried.items() if k in STAGE_DECODING[role]})
    manifest["prompts"] = {}
    manifest["decoding"] = decoding
    manifest["origin"] = {
        role: {"ref": s.ref, "kind": s.kind, "store": s.entry.name if s.entry is not None else None}
        for role, s in sources.items()
    }
    return manifest


def _without_digests(manifest: dict) -> dict:
    return {
        k: ({**v, "sha256": None} if isinstance(v, dict) and "sha256" in v else v)
        for k, v in manifest.items()
    }


def _current(out: Path, manifest: dict, sources: dict[tuple[str, str], Path]) -> bool:
    """`out` already is this bundle: same manifest (but for digests) and the very same files."""
    try:
        old = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(old, dict) or _without_digests(old) != _without_digests(manifest):
        return False
    return all(
        (out / name).is_file() and (out / name).samefile(path) for name, path in sources.items()
    )


def _space_for_copies(home: Path, paths: list[Path]) -> None:
    """Refuse early when files must be copied (no hardlinks across file systems) and do not fit."""
    home_dev = home.stat().st_dev
    needed = sum(p.stat().st_size for p in paths if p.stat().st_dev != home_dev)
    free = shutil.disk_usage(home).free
    if needed > free:
        raise BundleError(
            f"not enough space in the bundles home {shown(home)}: {needed:,} bytes to copy, "
            f"{free:,} free (the models are on another file system, so they cannot be linked)"
        )


def _describe(name: str, pair, sources: dict[str, Source]) -> str:
    if pair is not None and all(sources[r].ref == getattr(pair, r) for r in sources):
        return pair.description
    return f"{name}: " + "; ".join(f"{role} {s.ref}" for role, s in sources.items())


def create_bundle(
    name: str,
    *,
    perception: str | None = None,
    reasoning: str | None = None,
    mmproj: Path | None = None,
    home: Path | None = None,
    store: Path | None = None,
    catalog: Catalog | Path | None = None,
    base_url: str | None = None,
    progress: bool = False,
    convert: Converter | None = None,
    quant: str | None = None,
    force: bool = False,
    step: Callable[[str], None] = lambda label: None,
) -> CreateReport:
    """Build bundle `name` in the bundles home from a perception REF and a reasoning REF.

    A catalog pair's name alone is enough (its stages are the defaults); either stage may be left
    out. REFs: see edge_et.bundle.sources. Idempotent: what is in the store, converted or already
    this bundle is not fetched, converted or rewritten again.

    Args:
        home: the bundles home (default `bundles_home()`); store: the model store (models/store).
        convert: turns checkpoints into GGUF (needed only when a REF is a checkpoint).
        quant: the text quantization of converted checkpoints (default: the catalog's recommended).
        force: replace a folder of that name that `bundle create` did not make.
        step: called with a short label before each slow step.
    Returns:
        A CreateReport. Raises InputError (a REF, name or kind), BundleError (the home, the
        result), DownloadError (pull), MissingExtra (conversion without the export extra); every
        one a single line, with nothing left half-written in the home.
    """
    started = time.perf_counter()
    check_name(name)
    catalog = catalog if isinstance(catalog, Catalog) else load_catalog(catalog)
    pair = find_pair(name, catalog)
    refs = {"perception": perception, "reasoning": reasoning}
    if pair is not None:  # the pair's stages, where the command line does not replace them
        refs = {
            "perception": perception or pair.perception,
            "reasoning": reasoning or pair.reasoning,
        }
    refs = {role: ref for role, ref in refs.items() if ref}
    if not refs:
        raise InputError(
            f"'{name}' is not a catalog pair: give --perception REF and/or --reasoning REF "
            "(edge-et pull --list shows the pairs)"
        )
    if mmproj is not None and "perception" not in refs:
        raise InputError("--mmproj belongs to the perception stage; give --perception too")
    home = Path(home) if home is not None else bundles_home()
    store = Path(store) if store is not None else DEFAULT_STORE
    out = home / name
    sources = {
        role: classify(
            role,
            ref,
            mmproj=mmproj if role == "perception" else None,
            catalog=catalog,
            base=catalog.path.parent,
        )
        for role, ref in refs.items()
    }
    _check_target(out, force)
    _writable_home(home)
    if any(s.needs_conversion for s in sources.values()):
        if convert is None:
            raise MissingExtra(
                "converting a Hugging Face checkpoint needs the export toolchain: "
                "pip install 'edge-et[export]'",
                extra="export",
            )
        convert.check()
    files = {
        role: fetch_stage(
            s,
            store=store,
            catalog=catalog,
            base_url=base_url,
            progress=progress,
            convert=convert,
            quant=quant,
            step=step,
        )
        for role, s in sources.items()
    }
    names = _names(files)
    paths = {
        names[(role, kind)]: path
        for role, f in files.items()
        for kind, path in (("model", f.model), ("mmproj", f.mmproj))
        if path is not None
    }
    report = CreateReport(name, out)
    description = _describe(name, pair, sources)
    probe = _manifest(name, description, sources, files, names, {n: None for n in paths})
    if _current(out, probe, paths):
        report.unchanged = True
    else:
        _space_for_copies(home, list(paths.values()))
        step(f"linking {len(paths)} file(s) into {shown(out)}")
        _build(out, name, description, sources, files, names, paths)
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    for role, got in files.items():
        stage = manifest[role]
        report.stages.append(
            StageResult(
                role=role,
                ref=sources[role].ref,
                kind=sources[role].kind,
                model=stage["model"],
                mmproj=stage.get("mmproj"),
                arch=stage["arch"],
                quant=got.info.file_type,
                n_ctx=stage["n_ctx"],
                thinking=stage.get("thinking"),
                bytes=sum((out / f).stat().st_size for f in stage["sha256"]),
                downloaded=got.downloaded,
                converted=got.converted,
            )
        )
    report.seconds = time.perf_counter() - started
    return report


def _build(
    out: Path,
    name: str,
    description: str,
    sources: dict[str, Source],
    files: dict[str, StageFiles],
    names: dict[tuple[str, str], str],
    paths: dict[str, Path],
) -> None:
    """Link, hash, write and validate in a scratch folder; then rename it to `out` in one step."""
    try:
        with atomic.partial_directory(out) as scratch:
            built = scratch / "bundle"
            built.mkdir()
            for file_name, path in paths.items():
                _link(path, built / file_name)
            digests = {file_name: sha256_file(built / file_name) for file_name in paths}
            manifest = _manifest(name, description, sources, files, names, digests)
            atomic.write_text(built / MANIFEST, json.dumps(manifest, indent=2) + "\n")
            Bundle.load(built)  # the runtime's own validation, before the bundle becomes visible
            atomic.publish_directory(built, out)
    except EdgeEtError:
        raise
    except OSError as exc:
        what = "disk full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        raise BundleError(
            f"cannot write the bundle {shown(out)}: {what}; nothing was kept"
        ) from None
