"""One request in a process of its own: `python -m tests.helpers.fresh_run REQUEST_JSON`.

Prints the result's extraction, reasoning and answer as JSON. Tests compare it with the same
request run after others in a long-lived pipeline: nothing a process ran before may change it.
REQUEST_JSON: {"bundle", "image" (or null), "question", "seed", "mode", "decoding" (or null),
"description" (run `reason_over` on it instead of the picture)}.
"""

import json
import sys

from edge_et.bundle.manifest import Bundle
from edge_et.runtime.pipeline import Pipeline, RunOptions


def outcome(result) -> dict:
    """What must not depend on earlier requests (timings aside)."""
    return {"extraction": result.extraction, "reasoning": result.reasoning, "answer": result.answer}


def run(request: dict, pipeline: Pipeline) -> dict:
    options = RunOptions(mode=request.get("mode", "extract-think"), seed=request["seed"])
    if request.get("description") is not None:
        return outcome(pipeline.reason_over(request["description"], request["question"], options))
    return outcome(pipeline.run(request["image"], request["question"], options))


def open_bundle(path: str, decoding: dict | None) -> Pipeline:
    bundle = Bundle.load(path)
    if decoding is not None:
        bundle.decoding = decoding
    return Pipeline(bundle, n_threads=1)


def main() -> None:
    request = json.loads(sys.argv[1])
    with open_bundle(request["bundle"], request.get("decoding")) as pipeline:
        print(json.dumps(run(request, pipeline)))


if __name__ == "__main__":
    main()
