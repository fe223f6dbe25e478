"""The bundle: `bundle.json` plus the model files it names, validated before anything loads.

A bundle is the one thing `export` writes and the runtime reads (docs/architecture.md).
`Bundle.load` checks the schema, that every path stays inside the bundle folder, and asks
each stage's backend to check its files (edge_et/backends: the GGUFs a llama.cpp stage needs,
the graphs and config of an ONNX one), and, on request, their sha256. Any failure is one
`BundleError` line, raised before a single model byte is allocated.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path

from edge_et import backends
from edge_et.bundle.names import resolve_bundle
from edge_et.core.paths import path_problem, shown
from edge_et.errors import BundleError
from edge_et.formats.gguf import GGUFInfo

BUNDLE_FORMAT = "edge-et.bundle/1"
MANIFEST = "bundle.json"
SUPPORTED_BACKENDS = backends.names()  # the registry's, in the order errors list them
ROLES = ("perception", "reasoning")


@dataclass
class StageSpec:
    """One model of the pipeline as the manifest declares it."""

    role: str
    backend: str
    model: str
    arch: str = ""
    mmproj: str | None = None
    n_ctx: int | None = None
    thinking: bool = False
    random_weights: bool = False
    source: str = ""
    sha256: dict[str, str] = field(default_factory=dict)
    extra_files: list[str] = field(default_factory=list)  # ONNX: tokenizer, embed graph, data
    # Filled by validation, not read from JSON.
    model_path: Path = field(default=Path(), repr=False)
    mmproj_path: Path | None = field(default=None, repr=False)
    model_info: GGUFInfo | None = field(default=None, repr=False)
    mmproj_info: GGUFInfo | None = field(default=None, repr=False)
    onnx_config: dict | None = field(default=None, repr=False)

    @classmethod
    def from_dict(cls, role: str, data: dict) -> StageSpec:
        """Known keys only (a newer writer may add fields); types checked by validation."""
        declared = {
            f.name
            for f in fields(cls)
            if f.name
            not in ("role", "model_path", "mmproj_path", "model_info", "mmproj_info", "onnx_config")
        }
        return cls(role=role, **{k: v for k, v in data.items() if k in declared})

    def files(self) -> list[str]:
        """Every file of the stage, as its backend lists them (the order checksums are checked in)."""
        return backends.get(self.backend).stage_files(self)


@dataclass
class Bundle:
    """A validated bundle; paths in its stages are absolute and inside `path`."""

    path: Path
    name: str
    description: str
    perception: StageSpec | None
    reasoning: StageSpec | None
    prompts: dict[str, str]
    decoding: dict[str, dict]
    memory: dict = field(default_factory=dict)  # e.g. {"budget": "6GB"} for the planner
    answer: dict = field(
        default_factory=dict
    )  # e.g. {"force_letter": true} (runtime/answer_cue.py)

    @classmethod
    def load(cls, path: str | Path, *, verify_checksums: bool = False) -> Bundle:
        """Read and fully validate the bundle at `path`; no model is loaded.

        Args:
            path: the bundle folder, or its bundle.json, or the name of a bundle in the bundles
                home (edge_et.bundle.names.resolve_bundle).
            verify_checksums: also check every file's sha256 against the manifest (reads
                every byte: seconds for GB-sized models).

        Returns:
            The `Bundle`: its stages (`perception`, `reasoning`), prompts, decoding and memory.

        Raises:
            BundleError: a missing folder or file, a malformed manifest, a file that is not a
                valid model for its backend, or (with `verify_checksums`) a checksum mismatch;
                a name that is no bundle here (a catalog pair not built yet names the
                `edge-et bundle create` command).
        """
        path = resolve_bundle(path)
        problem = path_problem(path)
        if problem:
            raise BundleError(f"bundle '{shown(path)}': {problem}")
        root = Path(path)
        if root.name == MANIFEST and root.is_file():
            root = root.parent
        data = _read_manifest(root)
        bundle = cls(
            path=root.resolve(),
            name=_typed(data, "name", str, default=root.name),
            description=_typed(data, "description", str, default=""),
            perception=_stage(data, "perception"),
            reasoning=_stage(data, "reasoning"),
            prompts=_typed(data, "prompts", dict, default={}),
            decoding=_typed(data, "decoding", dict, default={}),
            memory=_typed(data, "memory", dict, default={}),
            answer=_typed(data, "answer", dict, default={}),
        )
        if not isinstance(bundle.answer.get("force_letter", False), bool):
            raise BundleError(f"{MANIFEST}: 'answer.force_letter' must be true or false")
        if bundle.perception is None and bundle.reasoning is None:
            raise BundleError(
                f"bundle '{root}': {MANIFEST} declares neither 'perception' nor 'reasoning'"
            )
        for stage in bundle.stages():
            _validate_stage(bundle.path, stage, verify_checksums)
        return bundle

    def stages(self) -> list[StageSpec]:
        return [s for s in (self.perception, self.reasoning) if s is not None]

    def require(self, role: str) -> StageSpec:
        """The stage a mode needs, or a one-line error naming what the bundle lacks."""
        stage = getattr(self, role)
        if stage is None:
            raise BundleError(f"bundle '{self.name}' has no {role} model; this mode needs one")
        return stage


def _read_manifest(root: Path) -> dict:
    manifest = root / MANIFEST
    if not root.exists():
        raise BundleError(f"bundle '{root}' does not exist")
    if not root.is_dir():
        raise BundleError(f"bundle '{root}' is not a folder")
    if not manifest.is_file():
        raise BundleError(f"bundle '{root}' has no {MANIFEST}")
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(f"cannot read '{manifest}': {exc}") from None
    except json.JSONDecodeError as exc:
        raise BundleError(
            f"'{manifest}' is not valid JSON: {exc.msg} at line {exc.lineno}"
        ) from None
    if not isinstance(data, dict):
        raise BundleError(f"'{manifest}' must hold a JSON object")
    if data.get("format") != BUNDLE_FORMAT:
        raise BundleError(
            f"'{manifest}': format is {data.get('format')!r}, expected '{BUNDLE_FORMAT}'"
        )
    return data


def _typed(data: dict, key: str, kind: type, *, default):
    value = data.get(key, default)
    if not isinstance(value, kind):
        raise BundleError(
            f"{MANIFEST}: '{key}' must be a {kind.__name__}, got {type(value).__name__}"
        )
    return value


def _stage(data: dict, role: str) -> StageSpec | None:
    raw = data.get(role)
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise BundleError(f"{MANIFEST}: '{role}' must be an object")
    for key, kind in (("backend", str), ("model", str)):
        if not isinstance(raw.get(key), kind):
            raise BundleError(f"{MANIFEST}: '{role}.{key}' is required and must be a string")
    checks = {
        "arch": str,
        "mmproj": (str, type(None)),
        "n_ctx": (int, type(None)),
        "thinking": bool,
        "random_weights": bool,
        "source": str,
        "sha256": dict,
        "extra_files": list,
    }
    for key, kind in checks.items():
        if key in raw and not isinstance(raw[key], kind):
            raise BundleError(
                f"{MANIFEST}: '{role}.{key}' has the wrong type ({type(raw[key]).__name__})"
            )
    if raw.get("n_ctx") is not None and raw["n_ctx"] < 16:
        raise BundleError(f"{MANIFEST}: '{role}.n_ctx' must be at least 16")
    if raw["backend"] not in SUPPORTED_BACKENDS:
        raise BundleError(
            f"{MANIFEST}: '{role}.backend' is {raw['backend']!r}; "
            f"known backends: {', '.join(SUPPORTED_BACKENDS)}"
        )
    return StageSpec.from_dict(role, raw)


def resolve_inside(root: Path, relative: str, what: str) -> Path:
    """`root/relative`, refusing absolute paths and anything (symlinks too) that leaves `root`."""
    if not relative or Path(relative).is_absolute() or "\\" in relative:
        raise BundleError(
            f"{MANIFEST}: {what} path {shown(relative)!r} must be relative to the bundle"
        )
    problem = path_problem(root / relative)
    if problem:
        raise BundleError(f"{MANIFEST}: {what} path {shown(relative)!r} cannot be used: {problem}")
    target = (root / relative).resolve()
    if not target.is_relative_to(root):
        raise BundleError(f"{MANIFEST}: {what} path {shown(relative)!r} escapes the bundle folder")
    if not target.exists():
        raise BundleError(f"bundle '{root.name}': {what} file '{shown(relative)}' is missing")
    if not target.is_file():
        raise BundleError(f"bundle '{root.name}': {what} '{shown(relative)}' is not a file")
    return target


def _validate_stage(root: Path, stage: StageSpec, verify_checksums: bool) -> None:
    backends.get(stage.backend).validate_stage(
        stage, lambda relative, what: resolve_inside(root, relative, what)
    )
    if verify_checksums:
        _verify_checksums(root, stage)


def _verify_checksums(root: Path, stage: StageSpec) -> None:
    for name in stage.files():
        expected = stage.sha256.get(name)
        if expected is None:
            raise BundleError(f"{MANIFEST}: no sha256 recorded for '{name}'")
        actual = sha256_file(root / name)
        if actual != expected.lower():
            raise BundleError(
                f"'{name}' does not match its sha256 (expected {expected[:12]}…, "
                f"got {actual[:12]}…): the file is damaged or was replaced"
            )


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
