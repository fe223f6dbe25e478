"""A copy of the tiny test bundle whose perception stages stop after a few tokens.

Random tiny models never emit EOS, so with the paper's 1024-token default every extraction
runs to the limit; tests of the eval and data tools need the plumbing, not long noise.
"""

import json
import shutil
from pathlib import Path

SHORT_DECODING = {
    "extract": {"max_tokens": 8},
    "caption": {"max_tokens": 8},
    "direct": {"max_tokens": 3},
    "think": {"budget": 6, "answer_budget": 3},
}


def short_bundle(tiny_bundle: Path, folder: Path) -> Path:
    """`folder/short`: the tiny bundle's files with SHORT_DECODING in its bundle.json."""
    target = folder / "short"
    shutil.copytree(tiny_bundle, target)
    manifest = json.loads((target / "bundle.json").read_text())
    manifest["decoding"] = SHORT_DECODING
    (target / "bundle.json").write_text(json.dumps(manifest, indent=2))
    return target
