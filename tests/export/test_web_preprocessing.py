"""The web app's preprocessing (web/src/vision.js, web/src/resample.js) against the Python
runtime's on pictures of several shapes: the normalised views are equal value for value, the
image spans equal, LLaVA-OneVision's packing (the bilinear shrink of a large grid included) equal.
Pillow's resampling is reimplemented integer for integer, its pass order (Pillow 13: vertical
first when the height shrinks more than twice the width) included. Node.js only, no npm modules."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edge_et.backends.onnx.idefics3 import pixel_values as idefics3_pixels
from edge_et.backends.onnx.vision import llava_ov_pixel_values
from edge_et.formats import idefics3, llava_ov

WEB = Path(__file__).resolve().parents[2] / "web"
SHAPES = [(128, 128), (97, 203), (600, 900), (50, 33), (300, 120), (41, 250)]  # height, width
PINPOINTS = tuple((h, w) for h in range(42, 253, 42) for w in range(42, 253, 42))
SPAN = {
    "fake": 1,
    "global": 2,
    "image": 9,
    "newline": [3],
    "blank": [4],
    "tiles": [[10 * r + c for c in range(1, 5)] for r in range(1, 5)],
}


def _picture(rng, height: int, width: int, smooth: bool) -> np.ndarray:
    if not smooth:
        return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // width, y * 255 // height, (x + y) % 256], -1).astype(np.uint8)
    rgb[height // 3 : height // 2, width // 4 : width // 2] = [200, 30, 90]
    return rgb


def write_cases(folder: Path) -> None:
    """The pictures and what the Python runtime makes of them, for tools/check-preprocessing.mjs."""
    rng = np.random.default_rng(0)
    cases = []
    for i, (height, width) in enumerate(SHAPES):
        rgb = _picture(rng, height, width, smooth=i % 2 == 0)
        (folder / f"img{i}.rgb").write_bytes(rgb.tobytes())
        newline = rng.standard_normal(8).astype(np.float32)
        layout = llava_ov.Layout(tile=42, side=3, pinpoints=PINPOINTS, max_tiles=9, newline=newline)
        pixels = llava_ov_pixel_values(rgb, layout, mean=[0.5] * 3, std=[0.5] * 3)
        per_view = rng.standard_normal((len(pixels), 9, 8)).astype(np.float32)
        (folder / f"l{i}.pix").write_bytes(pixels.tobytes())
        (folder / f"l{i}.per").write_bytes(per_view.tobytes())
        (folder / f"l{i}.packed").write_bytes(
            llava_ov.pack(per_view, height, width, layout).tobytes()
        )
        cases.append(
            {
                "i": i,
                "h": height,
                "w": width,
                "kind": "llava",
                "span": llava_ov.count_tokens(height, width, layout),
                "cfg": {
                    "kind": "llava_onevision",
                    "tile": 42,
                    "side": 3,
                    "pinpoints": [list(p) for p in PINPOINTS],
                    "max_tiles": 9,
                    "mean": [0.5] * 3,
                    "std": [0.5] * 3,
                    "rescale": 1 / 255,
                    "image_token_id": 7,
                    "resample": 3,
                    "newline": newline.tolist(),
                },
            }
        )
        for mode, resample in (("mtmd", 1), ("hf", 3)):
            layout = idefics3.Layout(
                tile=64, longest_edge=192, tokens=4, mode=mode, resample=resample
            )
            (folder / f"i{mode}{i}.pix").write_bytes(
                idefics3_pixels(rgb, layout, mean=[0.5] * 3, std=[0.5] * 3).tobytes()
            )
            span = idefics3.span_ids(
                *idefics3.grid_shape(height, width, layout),
                layout,
                idefics3.SpanTokens.from_config(SPAN),
            )
            cases.append(
                {
                    "i": i,
                    "h": height,
                    "w": width,
                    "kind": "idefics" + mode,
                    "span": span,
                    "cfg": {
                        "kind": "idefics3",
                        "layout": mode,
                        "tile": 64,
                        "longest_edge": 192,
                        "tokens_per_view": 4,
                        "do_image_splitting": True,
                        "resample": resample,
                        "mean": [0.5] * 3,
                        "std": [0.5] * 3,
                        "rescale": 1 / 255,
                        "image_token_id": 9,
                        "span_tokens": SPAN,
                    },
                }
            )
    (folder / "cases.json").write_text(json.dumps(cases))


def test_the_pages_preprocessing_is_the_python_runtimes(tmp_path):
    if not shutil.which("node"):
        pytest.skip("Node.js is not installed")
    write_cases(tmp_path)
    done = subprocess.run(
        ["node", str(WEB / "tools" / "check-preprocessing.mjs"), str(tmp_path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and len(lines) == 3 * len(SHAPES), done.stdout + done.stderr
    assert all(
        "pixel diff| 0," in line and "span equal" in line and line.endswith("packed diff| 0")
        for line in lines
    ), done.stdout
