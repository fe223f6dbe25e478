"""A small valid GGUF bundle on disk, with manifest changes for the error cases."""

import json
from pathlib import Path

from edge_et.bundle.manifest import sha256_file
from tests.helpers.ggufs import mmproj_gguf, text_gguf


def make_bundle(folder: Path, **changes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text_gguf(folder / "vlm.gguf", "qwen2vl")
    mmproj_gguf(folder / "mmproj.gguf")
    text_gguf(folder / "llm.gguf", "qwen3")
    manifest = {
        "format": "edge-et.bundle/1",
        "name": "t",
        "perception": {
            "backend": "llama.cpp",
            "model": "vlm.gguf",
            "mmproj": "mmproj.gguf",
            "arch": "qwen2vl",
            "sha256": {n: sha256_file(folder / n) for n in ("vlm.gguf", "mmproj.gguf")},
        },
        "reasoning": {
            "backend": "llama.cpp",
            "model": "llm.gguf",
            "thinking": True,
            "sha256": {"llm.gguf": sha256_file(folder / "llm.gguf")},
        },
    }
    for dotted, value in changes.items():
        *parents, key = dotted.split("__")
        target = manifest
        for part in parents:
            target = target[part]
        if value is DELETE:
            target.pop(key, None)
        else:
            target[key] = value
    (folder / "bundle.json").write_text(json.dumps(manifest))
    return folder


DELETE = object()  # a change that removes the key
