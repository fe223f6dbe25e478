"""A tiled picture reaches the perception model tile by tile (issue 12).

libmtmd cuts a tiling model's picture (Idefics3 / SmolVLM, any mtmd model that slices) into
several image chunks: one per tile plus the global view. The embedding cache keeps all of them
per picture: a new picture encodes every chunk, a second question on it encodes none, and the
language model sees what it sees with the cache off.

The tiny Idefics3 here tiles as SmolVLM does: 32-pixel tiles, longest edge 128 (4 tiles a
side), so a 1024 x 512 picture becomes 4 x 2 tiles plus the global view, 9 chunks of 4 tokens.
The committed micro model cannot show this: its 1 x 1 grid makes the tile and the global view
the same picture.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_et.backends.image_cache import EmbeddingCache

ROOT = Path(__file__).resolve().parents[2]
TILED = {"max_tiles_side": 4}  # export.archs.idefics3: longest edge 4 x the 32-pixel tile
CHUNKS = 4 * 2 + 1
QUESTION = "How many red blocks are there?"


def test_cache_counts_every_part_and_drops_whole_pictures():
    part = np.zeros(100, np.float32)  # 400 bytes
    cache = EmbeddingCache(max_bytes=1200)
    cache.put("a", (part, part))
    cache.put("b", (part,))
    assert cache.nbytes == 1200 and len(cache.get("a")) == 2  # "a" is now the newest
    cache.put("c", (part,))  # 1600 bytes: the least recently used picture goes, all its parts
    assert cache.get("b") is None and cache.nbytes == 1200
    cache.put("a", (part,))  # replaced, not added
    assert cache.nbytes == 800 and len(cache.get("a")) == 1
    off = EmbeddingCache(max_bytes=0)
    off.put("a", (part,))
    assert off.get("a") is None and off.nbytes == 0


# -- through llama.cpp on a tiny tiling Idefics3 -------------------------------------------


@pytest.fixture(scope="module")
def tiled():
    from export.tiny.bundle import tiny_ggufs

    return tiny_ggufs("idefics3", **TILED)


@pytest.fixture(scope="module")
def picture_file(tmp_path_factory) -> Path:
    from PIL import Image

    from export.parity.gguf_vision import synthetic_image

    path = tmp_path_factory.mktemp("tiled") / "wide.png"
    Image.fromarray(synthetic_image(1024, 512)).save(path)
    return path


def _model(files, **options):
    from edge_et.backends.llama_cpp.model import LlamaCppModel

    # One thread: llama.cpp's spinning threads crawl when the cores are shared.
    return LlamaCppModel(
        model_path=str(files.model),
        mmproj_path=str(files.mmproj),
        n_ctx=512,
        n_threads=1,
        **options,
    )


def _greedy(model, prompt: str, picture, n: int = 6):
    """(stats, first-token logits, n greedy tokens) of one question on `picture`."""
    from edge_et.backends.base import Sampling

    stats = model.start(prompt=prompt, image=picture)
    logits, tokens = [], []
    for _ in range(n):
        tokens.append(model.sample(sampling=Sampling(), edit=lambda x: logits.append(x.copy())))
        model.append(tokens=tokens[-1:])
    return stats, logits[0], tokens


@pytest.mark.slow
def test_every_tile_reaches_the_model_and_the_cache_keeps_them_all(tiled, picture_file):
    from edge_et.core.chat import render_user_turn
    from edge_et.core.images import load_image
    from export.parity.gguf_text import llama_image_side

    picture = load_image(picture_file)
    model, off = _model(tiled), _model(tiled, image_cache_bytes=0)
    try:
        prompt = render_user_turn(model.chat_template, model.media_marker + "\n" + QUESTION)
        first, first_logits, first_tokens = _greedy(model, prompt, picture)
        assert model.chunk_encodes == CHUNKS and model.image_encodes == 1
        assert not first.image_cached and first.image_encode_s > 0
        parts = model._image_cache.get(picture.sha256)
        assert len(parts) == CHUNKS
        # Tiles and the global view are different pixels: no chunk may stand in for another.
        unit = [p / np.linalg.norm(p) for p in parts]
        assert max(float(unit[0] @ u) for u in unit[1:]) < 0.9

        again, again_logits, again_tokens = _greedy(model, prompt, picture)
        assert again.image_cached and again.image_encode_s == 0
        assert model.chunk_encodes == CHUNKS and model.image_encodes == 1  # nothing encoded

        # The reference: the same model with the cache off encodes every chunk every time.
        _, off_logits, off_tokens = _greedy(off, prompt, picture)
        assert off.chunk_encodes == CHUNKS and off.image_encodes == 1
        np.testing.assert_array_equal(first_logits, off_logits)
        np.testing.assert_array_equal(again_logits, off_logits)
        assert first_tokens == again_tokens == off_tokens
        # And what libmtmd's own helper feeds (`mtmd_helper_eval_chunks`, no edge-et code in
        # between): the path export validation compares with transformers (test_parity.py).
        bare = llama_image_side(tiled.model, tiled.mmproj, prompt, picture.rgb, threads=1)
        np.testing.assert_allclose(first_logits, bare["logits"], rtol=0, atol=1e-5)
    finally:
        model.close()
        off.close()


@pytest.fixture(scope="module")
def tiled_bundle(tiled, tmp_path_factory) -> Path:
    from export.bundle import Stage, write_bundle

    out = tmp_path_factory.mktemp("tiled-bundle")
    write_bundle(
        out,
        name="tiled",
        perception=Stage(
            tiled.model,
            mmproj=tiled.mmproj,
            n_ctx=1024,
            random_weights=True,
            source="tiny random Idefics3 that tiles (tests/backends/test_tiled_images.py)",
        ),
        decoding={"extract": {"max_tokens": 8}},
    )
    return out


@pytest.mark.slow
def test_second_question_on_a_tiled_picture_encodes_nothing(
    tiled_bundle, picture_file, tmp_path, monkeypatch
):
    """`edge-et run --batch`: two questions on one picture; the extraction equals the cache-off
    pipeline's."""
    from edge_et.backends.llama_cpp import model as llama_cpp
    from edge_et.bundle.manifest import Bundle
    from edge_et.runtime.pipeline import Pipeline, RunOptions

    lines = tmp_path / "questions.jsonl"
    lines.write_text(
        "".join(
            json.dumps({"id": str(i), "image": str(picture_file), "question": QUESTION}) + "\n"
            for i in range(2)
        )
    )
    out = tmp_path / "out.jsonl"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_et.cli.main",
            "run",
            "--bundle",
            str(tiled_bundle),
            "--batch",
            str(lines),
            "--output",
            str(out),
            "--mode",
            "extract",
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    first, second = (json.loads(line) for line in out.read_text().splitlines())
    summary = json.loads(done.stderr.strip().splitlines()[-1])
    assert summary["image_encodes"] == 1
    assert not first["stages"]["extract"]["image_cached"]
    assert first["stages"]["extract"]["image_encode_s"] > 0
    assert second["stages"]["extract"]["image_cached"]
    assert second["stages"]["extract"]["image_encode_s"] == 0
    assert first["extraction"] == second["extraction"]

    monkeypatch.setattr(llama_cpp, "EmbeddingCache", lambda max_bytes: EmbeddingCache(0))
    with Pipeline(Bundle.load(tiled_bundle)) as off:
        reference = off.run(picture_file, QUESTION, RunOptions(mode="extract"))
        assert off.model("perception").chunk_encodes == CHUNKS
    assert reference.extraction == first["extraction"]
