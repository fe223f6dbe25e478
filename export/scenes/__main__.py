"""`python -m export.scenes --out DIR [--train N] [--heldout M]`: write the scene splits.

DIR/train.jsonl (seed 0, with the three training forms per record) and DIR/heldout.jsonl
(seed 1), in edge-et's eval format, with their PNGs under DIR/images/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge_et.errors import EdgeEtError
from export.scenes.forms import HELDOUT_SEED, TRAIN_SEED, write_split


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m export.scenes", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--train", type=int, default=2000, help="train examples (0: none)")
    parser.add_argument("--heldout", type=int, default=500, help="held-out examples")
    args = parser.parse_args(argv)
    try:
        if args.train:
            print(write_split(args.out, "train", TRAIN_SEED, args.train, forms=True))
        print(write_split(args.out, "heldout", HELDOUT_SEED, args.heldout))
    except EdgeEtError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None


if __name__ == "__main__":
    main()
