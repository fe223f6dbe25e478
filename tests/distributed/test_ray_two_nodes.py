"""`edge-et eval --ray 127.0.0.1:PORT` on a two-node cluster on this machine: `ray start --head`
plus `ray start --address`, one CPU each, started and torn down here. With one CPU per node
the perception actor and the reasoning actor must run on different nodes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge_et.eval.resumable import EvalRun
from edge_et.eval.run import read_eval_file
from edge_et.runtime.api import open_pipeline
from edge_et.runtime.pipeline import RunOptions
from tests.helpers.ray_cluster import comparable, read_records, two_node_cluster

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_eval_on_two_nodes_equals_the_local_run(ray_data, tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'edge-et[ray]'")
    local = tmp_path / "local.jsonl"
    with open_pipeline(ray_data["bundle"], threads=1) as pipeline:
        EvalRun(
            pipeline,
            read_eval_file(ray_data["eval"]),
            ["extract-think"],
            RunOptions(),
            local,
            seed=5,
        ).run()
    try:
        cluster = two_node_cluster()
        address, env = cluster.__enter__()
    except (OSError, subprocess.SubprocessError, TimeoutError) as exc:
        pytest.skip(f"a two-node Ray cannot start here: {exc}")
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "edge_et.cli.main",
                "eval",
                "--bundle",
                str(ray_data["bundle"]),
                "--data",
                str(ray_data["eval"]),
                "--seed",
                "5",
                "--threads",
                "1",
                "--predictions",
                str(tmp_path / "ray.jsonl"),
                "--ray",
                address,
                "--json",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        cluster.__exit__(None, None, None)
    assert done.returncode == 0, done.stderr
    assert "ray: 1 perception actor(s) x 1 CPU" in done.stderr
    report = json.loads(done.stdout)
    assert report["modes"]["extract-think"]["model_loads"] == 2
    assert comparable(read_records(tmp_path / "ray.jsonl")) == comparable(read_records(local))
