"""What ONNX Runtime's mobile usability checker says about a graph, kept as it said it.

`onnxruntime.tools.mobile_helpers.usability_checker.analyze_model` logs, per execution
provider it knows (NNAPI, CoreML NeuralNetwork, CoreML MLProgram), how many nodes it takes in
how many partitions, the operators it lacks and a verdict. The log is kept whole and the
verdicts are read out of it. The checker has no XNNPACK check; that is said, not guessed.
"""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

XNNPACK_NOTE = (
    "not checked: ONNX Runtime's usability checker knows NNAPI and CoreML only; "
    "XNNPACK takes the float Conv/MatMul/Gemm-style nodes it supports and leaves the "
    "rest (MatMulNBits included) to the CPU provider"
)
_SECTION = re.compile(r"^Checking (NNAPI|CoreML NeuralNetwork|CoreML MLProgram)\s*$")
_PARTITIONS = re.compile(r"(\d+) partitions with a total of (\d+)/(\d+) nodes")
_UNSUPPORTED = re.compile(r"Unsupported ops: (.*)$")
_VERDICT = re.compile(r"Model should perform well with .* as is: (YES|NO)")


def check_usability(path: Path) -> dict:
    """{provider: {partitions, nodes, of_nodes, unsupported_ops, performs_well}, "xnnpack": note,
    "log": the checker's text}."""
    from onnxruntime.tools.mobile_helpers import usability_checker

    text = io.StringIO()
    logger = logging.getLogger(f"edge-et.usability.{path.name}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = logging.StreamHandler(text)
    logger.addHandler(handler)
    try:
        usability_checker.analyze_model(Path(path), skip_optimize=False, logger=logger)
    except Exception as exc:  # noqa: BLE001 - the checker is advice: its failure is reported
        return {"error": f"{type(exc).__name__}: {exc}", "xnnpack": XNNPACK_NOTE}
    finally:
        logger.removeHandler(handler)
    return {**parse_checker_log(text.getvalue()), "xnnpack": XNNPACK_NOTE, "log": text.getvalue()}


def parse_checker_log(log: str) -> dict:
    """The per-provider verdicts of a usability checker log."""
    found: dict[str, dict] = {}
    current = None
    for line in log.splitlines():
        line = line.strip()
        if (section := _SECTION.match(line)) is not None:
            current = found.setdefault(section.group(1).lower().replace(" ", "_"), {})
        elif current is None:
            continue
        elif (parts := _PARTITIONS.search(line)) is not None:
            current.update(
                partitions=int(parts.group(1)),
                nodes=int(parts.group(2)),
                of_nodes=int(parts.group(3)),
            )
        elif (ops := _UNSUPPORTED.search(line)) is not None:
            current["unsupported_ops"] = [op for op in ops.group(1).split(",") if op]
        elif (verdict := _VERDICT.search(line)) is not None:
            current["performs_well"] = verdict.group(1) == "YES"
    return found
