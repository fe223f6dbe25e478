"""One local Ray (2 CPUs) for every Ray test of this folder, and the small data they share.

Ray starts in seconds, so the session is shared; it is skipped, with the reason, only where
Ray is missing or cannot start.
"""

import json
import logging
import shutil
import tempfile

import pytest
from PIL import Image

from tests.helpers.short_bundle import short_bundle

LINES = 6
QUESTION = "What color is shape {i}?\nA. red\nB. blue"


@pytest.fixture(scope="package")
def ray_session():
    """Ray, started here with 2 CPUs and its own temporary folder; stopped after this folder's
    tests, so the rest of the suite runs without Ray's processes."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"Ray is not installed ({exc.name}): pip install 'edge-et[ray]'")
    folder = tempfile.mkdtemp(prefix="/tmp/edge-et-ray-")  # short: Ray's socket paths are limited
    try:
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            logging_level=logging.ERROR,
            object_store_memory=256 << 20,
            log_to_driver=False,
            _temp_dir=folder,
        )
    except Exception as exc:  # noqa: BLE001 - whatever stops Ray starting is the skip reason
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"Ray cannot start here: {exc}")
    yield ray
    ray.shutdown()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="package")
def ray_data(tiny_bundle, tmp_path_factory):
    """The short tiny bundle; a batch file with good lines, a missing picture, a line that is not
    JSON and one with its own seed; an eval file and a QA file over the same pictures."""
    folder = tmp_path_factory.mktemp("ray-data")
    bundle = short_bundle(tiny_bundle, folder)
    lines, questions = [], []
    for i in range(LINES):
        Image.new("RGB", (40 + 8 * i, 40), (40 * i, 120, 200 - 30 * i)).save(folder / f"p{i}.png")
        lines.append(
            json.dumps({"image": f"p{i}.png", "question": QUESTION.format(i=i), "id": f"q{i}"})
        )
        questions.append(
            {
                "id": f"e{i}",
                "image": f"p{i}.png",
                "question": f"Which colour {i}?",
                "options": ["red", "green", "blue"],
                "answer": "ABC"[i % 3],
            }
        )
    lines.insert(2, json.dumps({"image": "missing.png", "question": "Where?", "id": "bad"}))
    lines.insert(4, "not json")
    lines.append(json.dumps({"image": "p1.png", "question": "Own seed?", "id": "own", "seed": 11}))
    batch = folder / "batch.jsonl"
    batch.write_text("\n".join(lines) + "\n")
    evals = folder / "eval.jsonl"
    evals.write_text("".join(json.dumps(q) + "\n" for q in questions))
    pairs = folder / "qa.jsonl"
    broken = {"id": "broken", "image": "missing.png", "question": "Which?", "answer": "none"}
    pairs.write_text("".join(json.dumps(q) + "\n" for q in questions[:3] + [broken]))
    return {"bundle": bundle, "batch": batch, "eval": evals, "qa": pairs, "folder": folder}
