"""mobile.json, the manifest an app reads (docs/mobile.md), as the Python runtime reads it.

A mobile package is also an ordinary bundle (bundle.json over its `.ort` graphs), so `edge-et run`
runs it. From format 2 on, each stage's model settings (tokenizer, chat template, special
tokens, end ids, context, vision section) are in `stages.<role>.settings`, and the runtime reads
them from there, as an app does, rather than from the stage's onnx_config.json: what the page
and a phone app are given is what the Python runtime itself runs on. A manifest of a newer
format than this edge-et knows is refused in one line, as the web page refuses it.
"""

from __future__ import annotations

import json
from pathlib import Path

from edge_et.errors import BundleError

MOBILE_MANIFEST = "mobile.json"
FORMAT_NAME = "edge-et.mobile"
FORMAT_VERSION = 2  # 2: stage settings, sessions, preprocessing, the pipeline's rules
SETTINGS_FROM = 2  # the first format whose stages carry their settings


def format_version(manifest: dict) -> int:
    """The manifest's format number; one line if it is not ours or newer than we read."""
    name, _, version = str(manifest.get("format", "")).partition("/")
    if name != FORMAT_NAME or not version.isdigit():
        raise BundleError(
            f"{MOBILE_MANIFEST}: format {manifest.get('format')!r} is not {FORMAT_NAME}/N"
        )
    if int(version) > FORMAT_VERSION:
        raise BundleError(
            f"{MOBILE_MANIFEST} is format {manifest['format']}, newer than this edge-et "
            f"reads ({FORMAT_NAME}/{FORMAT_VERSION}): upgrade edge-et"
        )
    return int(version)


def package_stage_settings(model_path: Path) -> dict | None:
    """The settings of the stage whose decoder is `model_path`, from the mobile.json of the
    package it is in; None outside a package or for a format-1 manifest (then the stage's
    onnx_config.json holds them)."""
    stage_dir = Path(model_path).parent
    path = stage_dir.parent / MOBILE_MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"cannot read {MOBILE_MANIFEST}: {exc}") from None
    if not isinstance(manifest, dict) or format_version(manifest) < SETTINGS_FROM:
        return None
    stage = (manifest.get("stages") or {}).get(stage_dir.name) or {}
    if (stage.get("sessions") or {}).get("decoder") != Path(model_path).name:
        return None  # not this package's decoder of that stage
    settings = stage.get("settings")
    if not isinstance(settings, dict):
        raise BundleError(f"{MOBILE_MANIFEST}: stages.{stage_dir.name}.settings is missing")
    return settings
