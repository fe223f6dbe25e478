"""docs/run.md's table of per-stage fields names every field `run --json` writes, so a new
StageStats field cannot ship undocumented."""

import re
from pathlib import Path

from edge_et.core.stats import StageStats

RUN_MD = Path(__file__).resolve().parents[1] / "docs" / "run.md"


def test_run_md_documents_every_stage_field():
    text = RUN_MD.read_text()
    table = text[text.index("Each stage:") :]
    table = table[: table.index("\n\n", table.index("| field"))]
    documented = set(
        re.findall(
            r"`(\w+)`",
            "\n".join(line.split("|")[1] for line in table.splitlines() if line.startswith("| `")),
        )
    )
    assert set(StageStats().to_dict()) - documented == set()
