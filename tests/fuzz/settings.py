"""Hypothesis profiles for the fuzz tests: `ci` (bounded, in `make test`) and `fuzz` (`make fuzz`).

`make fuzz` runs the `fuzz` profile: many examples per surface, and every failing input it
finds is saved under tests/fuzz/corpus/ (hypothesis's example database). The `ci` profile
replays that corpus read-only before generating its own few hundred inputs per surface, so a
bug found once by the long run is checked by every later `make test`.
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase, ReadOnlyDatabase

CORPUS = Path(__file__).resolve().parent / "corpus"
PROFILE_VARIABLE = "EDGE_ET_FUZZ_PROFILE"
FUZZ_EXAMPLES_VARIABLE = "EDGE_ET_FUZZ_EXAMPLES"

# Shared machines run these under load: a slow input is not a bug, so no deadline.
_COMMON = dict(
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)

settings.register_profile(
    "ci",
    max_examples=300,
    print_blob=True,
    database=ReadOnlyDatabase(DirectoryBasedExampleDatabase(CORPUS)),
    **_COMMON,
)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get(FUZZ_EXAMPLES_VARIABLE, "20000")),
    print_blob=True,
    database=DirectoryBasedExampleDatabase(CORPUS),
    **_COMMON,
)
settings.load_profile(os.environ.get(PROFILE_VARIABLE, "ci"))
