"""The import contracts in pyproject.toml hold, and they can fail.

`lint-imports` reads its contracts from pyproject.toml's [tool.importlinter] and the packages from
the current directory. A contract that cannot fail proves nothing, so a copy of the tree with
planted imports must break the contract each one breaks, named in the report.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("edge_et", "export")
LAYERS = "edge_et layers"
DEVICE_ONLY = "edge_et runs on devices"
EXPORT_FORMATS_ONLY = "export writes files"
NO_CYCLES = "no import cycles"
# What `lint-imports` runs, without relying on the venv's bin/ being on PATH.
LINT_IMPORTS = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    # A wide terminal keeps each contract's name on one line of the report.
    env = {**os.environ, "PYTHONPATH": str(root), "COLUMNS": "400"}
    return subprocess.run(
        [sys.executable, "-c", LINT_IMPORTS, "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def broken_sections(report: str) -> dict[str, str]:
    """Each broken contract's name (its first words) -> the imports the report lists under it."""
    broken = report.split("Broken contracts", 1)[-1]
    sections: dict[str, str] = {}
    current = None
    for line in broken.splitlines():
        named = next(
            (
                n
                for n in (LAYERS, DEVICE_ONLY, EXPORT_FORMATS_ONLY, NO_CYCLES)
                if line.startswith(n)
            ),
            None,
        )
        if named:
            current = named
            sections[current] = ""
        elif current:
            sections[current] += line + "\n"
    return sections


@pytest.fixture(scope="module")
def planted_report(tmp_path_factory) -> str:
    """lint-imports over a copy of the tree with one forbidden import per contract planted."""
    root = tmp_path_factory.mktemp("planted")
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    (root / "edge_et/core/planted_upward.py").write_text("import edge_et.cli\n")
    (root / "edge_et/runtime/planted_torch.py").write_text("import torch\n")
    (root / "export/gguf/planted_runtime.py").write_text("import edge_et.runtime.pipeline\n")
    (root / "edge_et/formats/planted_a.py").write_text("import edge_et.formats.planted_b\n")
    (root / "edge_et/formats/planted_b.py").write_text("import edge_et.formats.planted_a\n")
    (root / "edge_et/backends/planted_type_hint.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import edge_et.bundle.manifest\n"
    )
    done = lint_imports(root)
    assert done.returncode != 0, done.stdout
    return done.stdout


def test_an_upward_import_breaks_the_layers(planted_report):
    assert "edge_et.core.planted_upward -> edge_et.cli" in broken_sections(planted_report)[LAYERS]


def test_torch_in_edge_et_breaks_the_device_contract(planted_report):
    assert "edge_et.runtime.planted_torch -> torch" in broken_sections(planted_report)[DEVICE_ONLY]


def test_the_runtime_in_export_breaks_the_export_contract(planted_report):
    section = broken_sections(planted_report)[EXPORT_FORMATS_ONLY]
    assert "export.gguf.planted_runtime -> edge_et.runtime.pipeline" in section


def test_a_cycle_between_modules_breaks_the_acyclic_contract(planted_report):
    section = broken_sections(planted_report)[NO_CYCLES]
    assert "No cycles are allowed in edge_et.formats." in section
    assert ".planted_" in section


def test_an_import_for_type_hints_only_breaks_nothing(planted_report):
    # Backends name a bundle's Stage in annotations; such an import never runs.
    assert "planted_type_hint" not in planted_report


def test_the_tree_keeps_every_import_contract():
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout
    assert "0 broken" in done.stdout
