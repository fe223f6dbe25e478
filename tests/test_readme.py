"""The Python example of README.md and docs/python-api.md runs as written.

The example's code is executed, not a copy of it: only the bundle path and the sample picture's
path are pointed at the tiny test bundle (shortened decoding) and a freshly drawn sample.
"""

import re
from pathlib import Path

import pytest

from tests.helpers.short_bundle import short_bundle

ROOT = Path(__file__).resolve().parents[1]


def python_example(document: Path) -> str:
    """The first ```python block of `document` that opens a pipeline."""
    for block in re.findall(r"```python\n(.*?)```", document.read_text(encoding="utf-8"), re.S):
        if "with edge_et.open_pipeline(" in block:
            return block
    raise AssertionError(f"{document} has no open_pipeline example")


@pytest.mark.parametrize("document", ["README.md", "docs/python-api.md"])
def test_the_python_example_runs(document, tiny_bundle, sample_image, tmp_path, capsys):
    code = python_example(ROOT / document)
    assert code.count('"models/bundles/default"') == 1 and '"models/samples/sample.png"' in code
    code = code.replace('"models/bundles/default"', repr(str(short_bundle(tiny_bundle, tmp_path))))
    code = code.replace('"models/samples/sample.png"', repr(str(sample_image)))
    exec(compile(code, document, "exec"), {"__name__": "readme_example"})
    printed = capsys.readouterr().out
    assert "\nanswer:" in printed
