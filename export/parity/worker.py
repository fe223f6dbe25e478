"""The parity workers' entry point; internal, not a user command.

    python -m export.parity.worker KIND REQUEST.json REPORT.json

`export.parity.launcher.run_worker` starts it in a scratch folder. REQUEST.json holds the
keyword arguments of the measuring function of KIND; REPORT.json receives what it returns,
as strict JSON (NaN and infinities as null).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from export.parity import gguf_measure, llava_ov, mobile, onnx_measure

# kind -> the function that measures in the worker's process
KINDS = {
    "gguf": gguf_measure.measure,  # a GGUF (and mmproj) against transformers, with the verdict
    "onnx": onnx_measure.measure,  # an ONNX stage folder against transformers, with the verdict
    "llava-ov-reference": llava_ov.reference,  # transformers' side of LLaVA-OneVision parity
    "mobile-parity": mobile.parity,  # a mobile package against its source ONNX bundle
    "mobile-rss": mobile.stage_rss,  # one stage of a mobile package: peak RSS, rates
}


def json_safe(value):
    """`value` with NaN and infinities as None: strict JSON, and no NaN that passes a `>`."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def main(argv: list[str]) -> int:
    """Read the request, run the kind's function, write the report."""
    if len(argv) != 3 or argv[0] not in KINDS:
        print(
            f"usage: python -m export.parity.worker {{{','.join(KINDS)}}} REQUEST REPORT",
            file=sys.stderr,
        )
        return 2
    kind, request_path, report_path = argv[0], Path(argv[1]), Path(argv[2])
    report = KINDS[kind](**json.loads(request_path.read_text()))
    report_path.write_text(json.dumps(json_safe(report), indent=2, allow_nan=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
