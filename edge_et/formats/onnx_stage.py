"""Validation of ONNX stages of a bundle (backend "onnx"), before any session is created.

An ONNX stage names its decoder as `model` and, for perception, its vision graph as `mmproj`;
every other file it needs (tokenizer, embedding graph, external weight data, the image-newline
vector) is listed in `extra_files`. `onnx_config.json` sits beside the decoder and says how the
files fit together (edge_et/backends/onnx/model.py reads it). Checked here: every path stays in
the bundle, the graphs look like ONNX files, the config is readable and of our format, its
`arch` matches the manifest's, and every file the config names is listed in `extra_files`.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from edge_et.errors import BundleError

STAGE_CONFIG = "onnx_config.json"
CONFIG_FORMAT = "edge-et.onnx/1"
# A serialized ModelProto starts with field 1 (ir_version, a varint): tag byte 0x08. An ORT-format
# model (a mobile package's `.ort`) is a flatbuffer with the file identifier "ORTM" at byte 4.
_ONNX_FIRST_BYTE = 0x08
_ORT_IDENTIFIER = b"ORTM"
# Keys of onnx_config.json that name files of the stage folder.
_FILE_KEYS = ("tokenizer", "embed")


def config_name(model: str) -> str:
    """The manifest-relative path of the stage config of decoder `model`."""
    return str(PurePosixPath(model).parent / STAGE_CONFIG)


def check_onnx_file(path: Path, what: str) -> None:
    """One line if `path` cannot be an ONNX model (empty, or neither a ModelProto nor an
    ORT-format flatbuffer)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError as exc:
        raise BundleError(f"cannot read {what} '{path.name}': {exc.strerror or exc}") from None
    if Path(path).suffix == ".ort":
        if head[4:8] != _ORT_IDENTIFIER:
            raise BundleError(f"{what} '{path.name}' is not an ORT-format model")
    elif not head or head[0] != _ONNX_FIRST_BYTE:
        raise BundleError(f"{what} '{path.name}' is not an ONNX model")


def read_config(path: Path) -> dict:
    """onnx_config.json as a dict, checked for its format; one line if it is unusable."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"cannot read '{path.name}' of an ONNX stage: {exc}") from None
    if not isinstance(config, dict) or config.get("format") != CONFIG_FORMAT:
        raise BundleError(f"'{path.name}' is not an edge-et ONNX stage config ({CONFIG_FORMAT})")
    return config


def referenced_files(model: str, config: dict) -> list[str]:
    """Manifest-relative paths of the files the config names (tokenizer, embed, newline)."""
    folder = PurePosixPath(model).parent
    names = [config[k] for k in _FILE_KEYS if isinstance(config.get(k), str)]
    vision = config.get("vision") or {}
    if isinstance(vision.get("newline"), str):
        names.append(vision["newline"])
    return [str(folder / name) for name in names]


def validate_onnx_stage(stage, resolve) -> None:
    """Check an ONNX StageSpec; `resolve(relative, what)` resolves a path inside the bundle."""
    label = f"{stage.role} model"
    stage.model_path = resolve(stage.model, label)
    check_onnx_file(stage.model_path, label)
    config_path = resolve(config_name(stage.model), f"{stage.role} ONNX config")
    config = read_config(config_path)
    arch = config.get("arch", "")
    if stage.arch and arch and stage.arch != arch:
        raise BundleError(
            f"{label} '{stage.model}' is architecture '{arch}', but bundle.json says '{stage.arch}'"
        )
    stage.arch = stage.arch or arch
    missing = [f for f in referenced_files(stage.model, config) if f not in stage.extra_files]
    if missing:
        raise BundleError(
            f"bundle.json: '{stage.role}.extra_files' must list '{missing[0]}' "
            f"(named by {STAGE_CONFIG})"
        )
    for name in stage.extra_files:
        resolve(name, f"{stage.role} file")
    if stage.role == "perception":
        if not stage.mmproj:
            raise BundleError(
                "bundle.json: the ONNX perception stage needs an 'mmproj' (vision.onnx) file"
            )
        stage.mmproj_path = resolve(stage.mmproj, "perception vision graph")
        check_onnx_file(stage.mmproj_path, "perception vision graph")
        if not config.get("vision"):
            raise BundleError(f"'{config_name(stage.model)}' has no 'vision' section")
    elif stage.mmproj:
        raise BundleError(
            "bundle.json: the reasoning model is text-only; remove 'reasoning.mmproj'"
        )
    stage.onnx_config = config
