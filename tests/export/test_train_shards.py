"""Pre-rendered training pictures (export.micro.shards): the same bytes as rendering, so a run
with the cache is bit for bit the run without it (issue 30)."""

import json

import numpy as np
import pytest

from export.micro import shards as shards_module
from export.micro.shards import PixelShards
from export.scenes import example
from export.scenes.varied import model_view

SMALL = {
    "form": "extract",
    "seed": 0,
    "steps": 3,
    "batch": 2,
    "lr": 3e-3,
    "warmup": 1,
    "config": "test",
    "threads": 1,
    "log_every": 1,
    "eval_every": 3,
    "eval_size": 2,
    "checkpoint_every": 0,
    "scenes": "mix",
}


@pytest.fixture(autouse=True)
def small_shards(monkeypatch):
    monkeypatch.setattr(shards_module, "SHARD", 4)  # a few pictures per shard, not 256


def test_a_cached_picture_is_the_rendered_one_and_is_read_back_from_disk(tmp_path):
    cache = PixelShards(tmp_path, 0, "mix")
    for index in (0, 1, 5):  # two shards, classic and varied pictures
        rendered = np.asarray(model_view(example(0, index, "mix").image()), dtype=np.uint8)
        assert np.array_equal(cache.view(index), rendered)
    files = sorted(p.name for p in cache.folder.iterdir())
    assert files == ["000000000.npz", "000000004.npz"]  # whole shards, no partial file left
    written = {p.name: p.stat().st_mtime_ns for p in cache.folder.iterdir()}
    again = PixelShards(tmp_path, 0, "mix")  # a later run reads the files, renders nothing
    assert np.array_equal(again.view(6), cache.view(6)) and np.array_equal(
        again.view(2), cache.view(2)
    )
    assert {p.name: p.stat().st_mtime_ns for p in cache.folder.iterdir()} == written


def test_other_streams_and_seeds_have_their_own_shards(tmp_path):
    a, b = PixelShards(tmp_path, 0, "mix"), PixelShards(tmp_path, 1, "mix")
    assert a.folder != b.folder != PixelShards(tmp_path, 0, "classic").folder
    assert not np.array_equal(a.view(0), b.view(0))


@pytest.mark.slow
def test_training_with_the_cache_is_bit_for_bit_training_without_it(tmp_path):
    import torch
    from safetensors.torch import load_file

    from export.micro.train import train

    train(out=tmp_path / "plain", log=lambda line: None, **SMALL)
    train(out=tmp_path / "cached", log=lambda line: None, pixel_cache=tmp_path / "pixels", **SMALL)
    assert any((tmp_path / "pixels").rglob("*.npz"))
    logs = [
        [
            json.loads(line)["loss"]
            for line in (tmp_path / run / "train_log.jsonl").read_text().splitlines()
        ]
        for run in ("plain", "cached")
    ]
    assert logs[0] == logs[1]
    plain, cached = (
        load_file(str(tmp_path / run / "hf" / "model.safetensors")) for run in ("plain", "cached")
    )
    assert plain.keys() == cached.keys()
    assert all(torch.equal(plain[name], cached[name]) for name in plain)
