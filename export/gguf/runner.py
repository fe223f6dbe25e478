"""The subprocess entry that runs code needing the llama.cpp sdist's gguf-py; internal, not a
user command.

    python -m export.gguf.runner convert --converter-dir DIR [--pre-fallback NAME] -- ARGS...
    python -m export.gguf.runner mmproj HF_DIR OUT_FILE [--outtype f16]
    python -m export.gguf.runner unconvert LAYOUT_JSON OUT_FILE --pair PROBE_GGUF REAL_GGUF ...

`export.gguf.converter.run_with_gguf_py` starts it with the sdist's gguf-py ahead of PyPI's
`gguf` on sys.path: "convert" runs convert_hf_to_gguf.py on ARGS, "mmproj" our LLaVA-OneVision
mmproj writer (export/gguf/llava_ov_mmproj.py), "unconvert" reads GGUF weights back into an HF
checkpoint (export/gguf/unconvert.py) and prints its report as the last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from export.gguf import converter, llava_ov_mmproj, unconvert


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m export.gguf.runner")
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser("convert")
    convert.add_argument("--converter-dir", type=Path, required=True)
    convert.add_argument("--pre-fallback", default=None)
    convert.add_argument("rest", nargs=argparse.REMAINDER)
    mmproj = commands.add_parser("mmproj")
    mmproj.add_argument("hf_dir", type=Path)
    mmproj.add_argument("out_file", type=Path)
    mmproj.add_argument("--outtype", choices=llava_ov_mmproj.OUTTYPES, default="f16")
    back = commands.add_parser("unconvert")
    back.add_argument("layout", type=Path)
    back.add_argument("out_file", type=Path)
    back.add_argument("--pair", nargs=2, type=Path, action="append", required=True)
    return parser


def main(argv: list[str]) -> None:
    ns = _parser().parse_args(argv)
    if ns.command == "convert":
        rest = ns.rest[1:] if ns.rest[:1] == ["--"] else ns.rest
        converter.convert(ns.converter_dir, rest, ns.pre_fallback)
    elif ns.command == "unconvert":
        print(json.dumps(unconvert.fill_in_subprocess(ns.layout, ns.out_file, ns.pair)))
    else:
        llava_ov_mmproj.write_in_subprocess(ns.hf_dir, ns.out_file, ns.outtype)


if __name__ == "__main__":
    main(sys.argv[1:])
