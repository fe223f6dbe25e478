"""The runtime stays light: importing every edge_et module pulls in no training toolchain."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "optimum", "tokenizers", "safetensors", "export")

PROBE = """
import importlib, pkgutil, sys
import edge_et
names = [m.name for m in pkgutil.walk_packages(edge_et.__path__, "edge_et.")]
for name in names:
    importlib.import_module(name)
print(len(names))
print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)))
"""


def test_every_runtime_module_imports_without_heavy_packages():
    done = subprocess.run(
        [sys.executable, "-c", f"HEAVY={HEAVY!r}\n" + PROBE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    count, heavy = (done.stdout.splitlines() + [""])[:2]
    assert int(count) >= 10  # the walk really found the modules
    assert heavy == "", f"runtime imported: {heavy}"
