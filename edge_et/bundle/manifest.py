"""The bundle: `bundle.json` plus the model files it names, validated before anything loads.

A bundle is the one thing `export` writes and the runtime reads (ARCHITECTURE.md).
`Bundle.load` checks the schema, that every path stays inside the bundle folder, that
the files exist and are the GGUFs their role needs (a perception stage needs a text
model and a `clip` mmproj), and, on request, their sha256. Any failure is one
`BundleError` line, raised before a single model byte is allocated.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path

from edge_et.errors import BundleError
from edge_et.formats.gguf import GGUFError, GGUFInfo, read_gguf_info
from edge_et.formats.onnx_stage import config_name, validate_onnx_stage

BUNDLE_FORMAT = "edge-et.bundle/1"
MANIFEST = "bundle.json"
SUPPORTED_BACKENDS = ("llama.cpp", "onnx")
ROLES = ("perception", "reasoning")
MMPROJ_ARCH = "clip"


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
    def from_dict(cls, role: str, data: dict) -> "StageSpec":
        """Known keys only (a newer writer may add fields); types checked by validation."""
        declared = {f.name for f in fields(cls) if f.name not in
                    ("role", "model_path", "mmproj_path", "model_info", "mmproj_info",
                     "onnx_config")}
        return cls(role=role, **{k: v for k, v in data.items() if k in declared})

    def files(self) -> list[str]:
        extra = [config_name(self.model)] if self.backend == "onnx" else []
        return [self.model] + ([self.mmproj] if self.mmproj else []) + extra + self.extra_files


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

    @classmethod
    def load(cls, path: str | Path, *, verify_checksums: bool = False) -> "Bundle":
        """Read and fully validate the bundle at `path` (a folder or its bundle.json)."""
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
        )
        if bundle.perception is None and bundle.reasoning is None:
            raise BundleError(f"bundle '{root}': {MANIFEST} declares neither 'perception' nor 'reasoning'")
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
        raise BundleError(f"'{manifest}' is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, dict):
        raise BundleError(f"'{manifest}' must hold a JSON object")
    if data.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"'{manifest}': format is {data.get('format')!r}, expected '{BUNDLE_FORMAT}'")
    return data


def _typed(data: dict, key: str, kind: type, *, default):
    value = data.get(key, default)
    if not isinstance(value, kind):
        raise BundleError(f"{MANIFEST}: '{key}' must be a {kind.__name__}, got {type(value).__name__}")
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
    checks = {"arch": str, "mmproj": (str, type(None)), "n_ctx": (int, type(None)),
              "thinking": bool, "random_weights": bool, "source": str, "sha256": dict,
              "extra_files": list}
    for key, kind in checks.items():
        if key in raw and not isinstance(raw[key], kind):
            raise BundleError(f"{MANIFEST}: '{role}.{key}' has the wrong type ({type(raw[key]).__name__})")
    if raw.get("n_ctx") is not None and raw["n_ctx"] < 16:
        raise BundleError(f"{MANIFEST}: '{role}.n_ctx' must be at least 16")
    if raw["backend"] not in SUPPORTED_BACKENDS:
        raise BundleError(f"{MANIFEST}: '{role}.backend' is {raw['backend']!r}; "
                          f"known backends: {', '.join(SUPPORTED_BACKENDS)}")
    return StageSpec.from_dict(role, raw)


def resolve_inside(root: Path, relative: str, what: str) -> Path:
    """`root/relative`, refusing absolute paths and anything (symlinks too) that leaves `root`."""
    if not relative or Path(relative).is_absolute() or "\\" in relative:
        raise BundleError(f"{MANIFEST}: {what} path {relative!r} must be relative to the bundle")
    target = (root / relative).resolve()
    if not target.is_relative_to(root):
        raise BundleError(f"{MANIFEST}: {what} path {relative!r} escapes the bundle folder")
    if not target.exists():
        raise BundleError(f"bundle '{root.name}': {what} file '{relative}' is missing")
    if not target.is_file():
        raise BundleError(f"bundle '{root.name}': {what} '{relative}' is not a file")
    return target


def _gguf(path: Path, what: str) -> GGUFInfo:
    try:
        return read_gguf_info(path)
    except GGUFError as exc:
        raise BundleError(f"{what} '{path.name}' is broken: {exc}") from None
    except OSError as exc:
        raise BundleError(f"cannot read {what} '{path.name}': {exc.strerror or exc}") from None


def _validate_stage(root: Path, stage: StageSpec, verify_checksums: bool) -> None:
    if stage.backend == "onnx":
        if not all(isinstance(f, str) for f in stage.extra_files):
            raise BundleError(f"{MANIFEST}: '{stage.role}.extra_files' must list file names")
        validate_onnx_stage(stage, lambda relative, what: resolve_inside(root, relative, what))
        if verify_checksums:
            _verify_checksums(root, stage)
        return
    label = f"{stage.role} model"
    stage.model_path = resolve_inside(root, stage.model, label)
    stage.model_info = _gguf(stage.model_path, label)
    arch = stage.model_info.architecture
    if arch == MMPROJ_ARCH:
        raise BundleError(f"{label} '{stage.model}' is an mmproj (vision projector), not a language model")
    if stage.arch and stage.arch != arch:
        raise BundleError(f"{label} '{stage.model}' is architecture '{arch}', "
                          f"but {MANIFEST} says '{stage.arch}'")
    stage.arch = arch
    if stage.role == "perception":
        _validate_mmproj(root, stage)
    elif stage.mmproj:
        raise BundleError(f"{MANIFEST}: the reasoning model is text-only; remove 'reasoning.mmproj'")
    if verify_checksums:
        _verify_checksums(root, stage)


def _validate_mmproj(root: Path, stage: StageSpec) -> None:
    if not stage.mmproj:
        raise BundleError(f"{MANIFEST}: the perception stage needs an 'mmproj' (vision projector) file")
    stage.mmproj_path = resolve_inside(root, stage.mmproj, "perception mmproj")
    stage.mmproj_info = _gguf(stage.mmproj_path, "perception mmproj")
    if stage.mmproj_info.architecture != MMPROJ_ARCH:
        raise BundleError(f"perception mmproj '{stage.mmproj}' is a '{stage.mmproj_info.architecture}' "
                          "model, not a vision projector (clip)")
    if not stage.mmproj_info.metadata.get("clip.has_vision_encoder", False):
        raise BundleError(f"perception mmproj '{stage.mmproj}' has no vision encoder")


def _verify_checksums(root: Path, stage: StageSpec) -> None:
    for name in stage.files():
        expected = stage.sha256.get(name)
        if expected is None:
            raise BundleError(f"{MANIFEST}: no sha256 recorded for '{name}'")
        actual = sha256_file(root / name)
        if actual != expected.lower():
            raise BundleError(f"'{name}' does not match its sha256 (expected {expected[:12]}…, "
                              f"got {actual[:12]}…): the file is damaged or was replaced")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
