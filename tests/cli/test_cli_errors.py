"""User mistakes at the command line: one line on stderr, exit code 2, no traceback, nothing loaded."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.bundles import make_bundle

ROOT = Path(__file__).resolve().parents[2]


def edge_et(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edge_et.cli.main", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_line_error(done: subprocess.CompletedProcess, fragment: str) -> None:
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert fragment in lines[0]
    assert "Traceback" not in done.stderr and done.stdout == ""


def _png_bytes() -> bytes:
    import io

    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
        buffer, "PNG"
    )
    return buffer.getvalue()


@pytest.fixture()
def header_bundle(tmp_path):
    """A valid-looking bundle whose GGUFs hold headers only: enough to fail before any load."""
    return make_bundle(tmp_path / "bundle")


@pytest.mark.parametrize(
    "make_image, fragment",
    [
        (lambda p: p, "file not found"),
        (lambda p: (p.write_bytes(_png_bytes()[:120]), p)[1], "truncated"),
        (lambda p: (p.write_text("<html>404</html>"), p)[1], "contains text"),
        (lambda p: (p.write_bytes(b""), p)[1], "empty"),
        (lambda p: (p.mkdir(), p)[1], "directory"),
    ],
)
def test_bad_images(header_bundle, tmp_path, make_image, fragment):
    image = make_image(tmp_path / "img.png")
    done = edge_et("run", "--bundle", str(header_bundle), "--image", str(image), "--question", "Q?")
    assert_one_line_error(done, fragment)


def test_unknown_mode_lists_the_valid_ones(header_bundle):
    done = edge_et("run", "--bundle", str(header_bundle), "--question", "Q?", "--mode", "fast")
    assert_one_line_error(done, "extract-think, caption-think, direct, extract")


def test_missing_image_and_empty_question(header_bundle, tmp_path):
    assert_one_line_error(
        edge_et("run", "--bundle", str(header_bundle), "--question", "Q?"), "needs an image"
    )
    from edge_et.core.images import write_sample_image

    image = write_sample_image(tmp_path / "s.png")
    assert_one_line_error(
        edge_et("run", "--bundle", str(header_bundle), "--image", str(image), "--question", "  "),
        "question is empty",
    )


def test_mode_needing_a_missing_stage(tmp_path):
    folder = make_bundle(tmp_path / "b")
    manifest = json.loads((folder / "bundle.json").read_text())
    del manifest["reasoning"]
    (folder / "bundle.json").write_text(json.dumps(manifest))
    done = edge_et("run", "--bundle", str(folder), "--image", "x.png", "--question", "Q?")
    assert_one_line_error(done, "has no reasoning model")


def test_bad_option_values_are_usage_errors(header_bundle, tmp_path):
    from edge_et.core.images import write_sample_image

    image = write_sample_image(
        tmp_path / "s.png"
    )  # the run would go on to load models without the check
    done = edge_et(
        "run",
        "--bundle",
        str(header_bundle),
        "--image",
        str(image),
        "--question",
        "Q",
        "--think-budget",
        "-3",
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr and done.stdout == ""
    assert "Invalid value for '--think-budget'" in done.stderr


def test_info_json_describes_the_bundle(header_bundle):
    done = edge_et("info", str(header_bundle), "--json", "--verify")
    assert done.returncode == 0, done.stderr
    described = json.loads(done.stdout)
    assert set(described["stages"]) == {"perception", "reasoning"}
    assert described["stages"]["perception"]["mmproj"]["architecture"] == "clip"
    assert described["stages"]["reasoning"]["model"]["context_length"] == 4096


def test_an_empty_stop_string_is_refused_before_anything_loads(header_bundle):
    done = edge_et("run", "--bundle", str(header_bundle), "--question", "Q?", "--stop", "")
    assert_one_line_error(done, "stop string must be non-empty")


def test_an_unknown_residency_lists_auto_too(header_bundle, tmp_path):
    from edge_et.core.images import write_sample_image

    image = write_sample_image(tmp_path / "s.png")
    done = edge_et(
        "run",
        "--bundle",
        str(header_bundle),
        "--image",
        str(image),
        "--question",
        "Q",
        "--residency",
        "foo",
    )
    assert_one_line_error(done, "unknown residency 'foo'; choose one of: auto, co-resident, swap")


def test_help_shows_the_ray_extra_whole():
    # rich markup once ate "[ray]", printing pip install 'edge-et'
    done = subprocess.run(
        [sys.executable, "-m", "edge_et.cli.main", "run", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0 and "pip install 'edge-et[ray]'" in done.stdout
