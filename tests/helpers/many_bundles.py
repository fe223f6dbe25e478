"""Three tiny bundles in one bundles home, for the many-bundle server: `alpha` and `beta` share
one reasoning GGUF (the same file, so the same sha256), `gamma` has models of its own.

    alpha: perception qwen2vl seed 0 (the tiny bundle's)  reasoning qwen3 seed 1 (the tiny bundle's)
    beta:  perception qwen2vl seed 2                      reasoning: alpha's file
    gamma: perception qwen2vl seed 3                      reasoning qwen3 seed 4

Every perception model has the same shape (so the same planned bytes), and so has every
reasoning model: a budget can be sized to hold exactly one pair. Decoding is short
(tests.helpers.short_bundle), so a request takes a fraction of a second.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from edge_et.bundle.manifest import sha256_file
from tests.helpers.short_bundle import SHORT_DECODING

NAMES = ("alpha", "beta", "gamma")


def many_bundles(tiny_bundle: Path, home: Path) -> Path:
    """`home` with the three bundles; returns it."""
    from export.tiny.bundle import tiny_ggufs

    tiny = json.loads((tiny_bundle / "bundle.json").read_text())
    shared = tiny_bundle / tiny["reasoning"]["model"]
    own = {
        "alpha": (
            tiny_bundle / tiny["perception"]["model"],
            tiny_bundle / tiny["perception"]["mmproj"],
        ),
        "beta": _vlm(tiny_ggufs("qwen2vl", seed=2)),
        "gamma": _vlm(tiny_ggufs("qwen2vl", seed=3)),
    }
    reasoners = {"alpha": shared, "beta": shared, "gamma": tiny_ggufs("qwen3", seed=4).model}
    for name in NAMES:
        folder = home / name
        folder.mkdir(parents=True, exist_ok=True)
        model, mmproj = own[name]
        files = {"perception.gguf": model, "mmproj.gguf": mmproj, "reasoning.gguf": reasoners[name]}
        for target, source in files.items():
            shutil.copyfile(source, folder / target)
        manifest = json.loads(json.dumps(tiny))
        manifest["name"] = name
        manifest["decoding"] = SHORT_DECODING
        manifest["perception"].update(
            model="perception.gguf",
            mmproj="mmproj.gguf",
            sha256={n: sha256_file(folder / n) for n in ("perception.gguf", "mmproj.gguf")},
        )
        manifest["reasoning"].update(
            model="reasoning.gguf",
            sha256={"reasoning.gguf": sha256_file(folder / "reasoning.gguf")},
        )
        (folder / "bundle.json").write_text(json.dumps(manifest, indent=2))
    return home


def _vlm(files) -> tuple[Path, Path]:
    return files.model, files.mmproj
