"""`run --batch --ray`: on a local Ray (2 CPUs, tiny bundle) the records equal the local run's,
in input order, bad lines included; a killed actor is retried without a duplicate record;
`--resume` continues a Ray run or a local one."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edge_et.distributed.batch import RayRunner
from edge_et.distributed.cluster import RaySettings
from edge_et.errors import EdgeEtError, InputError
from edge_et.runtime.api import open_pipeline
from edge_et.runtime.batch import read_batch, run_batch
from edge_et.runtime.pipeline import RunOptions
from edge_et.runtime.resumable import BatchRun
from tests.helpers.ray_cluster import comparable, ctrl_c_after_lines, read_records, single_actor_pid

ROOT = Path(__file__).resolve().parents[2]
OPTIONS = RunOptions(seed=3)


def answer(bundle: Path, batch: Path, runner=run_batch, options=OPTIONS, **run) -> list[dict]:
    records = []
    with open_pipeline(bundle, threads=1) as pipeline:
        summary = runner(pipeline, read_batch(batch), options, records.append, **run)
    return records if options is OPTIONS else (records, summary)


@pytest.fixture(scope="module")
def local(ray_data):
    """The single-process run every Ray run must equal."""
    return answer(ray_data["bundle"], ray_data["batch"])


@pytest.mark.parametrize("images", ["bytes", "paths"])
def test_ray_batch_gives_the_local_records_in_input_order(ray_session, ray_data, local, images):
    records = answer(
        ray_data["bundle"], ray_data["batch"], RayRunner(RaySettings(images=images), 1)
    )
    assert comparable(records) == comparable(local)
    assert [r["index"] for r in records] == list(range(len(local)))
    errors = {r["id"]: r["error"] for r in records if "error" in r}
    assert "file not found" in errors["bad"] and "not valid JSON" in errors[None]
    assert next(r for r in records if r["id"] == "own")["seed"] == 11  # a line keeps its own seed


def test_a_worker_that_cannot_read_a_path_stops_the_run_in_one_line(
    ray_session, ray_data, monkeypatch
):
    # The driver believes it reads missing.png, so a worker that cannot is a cluster problem.
    monkeypatch.setattr("edge_et.distributed.batch.readable_here", lambda path: path is not None)
    written = []
    with pytest.raises(InputError, match="cannot read .*missing.png.*--ray-images bytes") as caught:
        answer(
            ray_data["bundle"],
            ray_data["batch"],
            RayRunner(RaySettings(images="paths"), 1),
            progress=lambda: written.append(1),
        )
    assert "\n" not in str(caught.value) and len(written) == 2  # the lines before it were written


def test_a_killed_actor_is_retried_without_a_duplicate_record(ray_session, ray_data):
    # Long reasoning (the random model never stops early): when the first record arrives, the
    # reasoning actor still has most lines to answer, in flight or queued.
    options = RunOptions(seed=3, think_budget=200, answer_budget=40)
    local, _ = answer(ray_data["bundle"], ray_data["batch"], options=options)
    killed = []

    def kill_the_reasoning_actor() -> None:
        if not killed:
            pid = single_actor_pid("ReasoningWorker")
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    records, summary = answer(
        ray_data["bundle"],
        ray_data["batch"],
        RayRunner(RaySettings(), 1),
        options=options,
        progress=kill_the_reasoning_actor,
    )
    assert [r["index"] for r in records] == list(range(len(local)))  # each line once, in order
    assert comparable(records) == comparable(local)
    assert summary.model_loads == 3  # the restarted actor loaded its model again


def resumable(
    bundle: Path,
    batch: Path,
    out: Path,
    runner,
    *,
    residency="co-resident",
    resume=False,
    stop_after=None,
):
    done = []
    with open_pipeline(bundle, threads=1, residency=residency) as pipeline:
        run = BatchRun(pipeline, batch, read_batch(batch), OPTIONS, out, resume=resume)
        return run.run(
            lambda: done.append(1),
            runner=runner,
            stop=lambda: stop_after is not None and len(done) >= stop_after,
        )


def test_resume_continues_a_stopped_ray_run_and_a_local_one(ray_session, ray_data, local, tmp_path):
    bundle, batch = ray_data["bundle"], ray_data["batch"]
    ray_runner = RayRunner(RaySettings(), 1)
    stopped = resumable(bundle, batch, tmp_path / "ray.jsonl", ray_runner, stop_after=3)
    assert stopped.left == len(local) - 3 and len(read_records(tmp_path / "ray.jsonl")) == 3
    resumed = resumable(bundle, batch, tmp_path / "ray.jsonl", ray_runner, resume=True)
    assert resumed.resumed == 3
    assert comparable(read_records(tmp_path / "ray.jsonl")) == comparable(local)
    # A local swap run stopped in its reasoning pass saved every extraction: Ray reasons over them.
    resumable(bundle, batch, tmp_path / "swap.jsonl", run_batch, residency="swap", stop_after=2)
    side = tmp_path / "swap.jsonl.extractions.jsonl"
    assert len(read_records(side)) == len(local)
    resumable(bundle, batch, tmp_path / "swap.jsonl", ray_runner, residency="swap", resume=True)
    assert comparable(read_records(tmp_path / "swap.jsonl")) == comparable(local)
    assert not side.exists()


def test_cli_batch_on_a_running_cluster_and_one_line_errors(ray_session, ray_data, local, tmp_path):
    address = ray_session.get_runtime_context().gcs_address
    base = [sys.executable, "-m", "edge_et.cli.main", "run", "--bundle", str(ray_data["bundle"])]
    out = tmp_path / "out.jsonl"
    done = subprocess.run(
        [
            *base,
            "--batch",
            str(ray_data["batch"]),
            "--output",
            str(out),
            "--seed",
            "3",
            "--threads",
            "1",
            "--ray",
            address,
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert comparable(read_records(out)) == comparable(local)
    summary = json.loads(done.stderr.strip().splitlines()[-1])
    assert summary["residency"] == "ray" and summary["model_loads"] == 2
    for extra, fragment in (
        (["--image", "x.png", "--question", "q", "--ray"], "--ray answers a --batch"),
        (
            ["--batch", str(ray_data["batch"]), "--ray", address, "--ray-perception-actors", "5"],
            "the Ray cluster holds 2 actor(s)",
        ),
    ):
        done = subprocess.run(
            [*base, *extra], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 2 and fragment in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def test_a_model_that_will_not_load_on_the_workers_is_one_line(ray_session, ray_data, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(ray_data["bundle"], bundle)
    with open_pipeline(bundle, threads=1) as pipeline:  # planned from the whole file
        model = pipeline.bundle.require("reasoning").model_path
        model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])  # then cut short
        with pytest.raises(EdgeEtError) as caught:
            RayRunner(RaySettings(), 1)(
                pipeline, read_batch(ray_data["batch"]), OPTIONS, lambda record: None
            )
    assert "reasoning model" in str(caught.value) and "\n" not in str(caught.value)


def test_ctrl_c_stops_a_ray_batch_whole_and_the_resume_finishes_it(
    ray_session, ray_data, local, tmp_path
):
    """SIGINT to `run --batch --ray`: exit 130 with the command that resumes, whole lines only;
    that command finishes the file, each line once, as a run that was never stopped writes it."""
    address = ray_session.get_runtime_context().gcs_address
    lines = ray_data["batch"].read_text().splitlines()
    batch = ray_data["folder"] / "twice.jsonl"  # the signal lands with lines still to answer
    batch.write_text("\n".join(lines * 2) + "\n")
    out = tmp_path / "out.jsonl"
    command = [
        sys.executable,
        "-m",
        "edge_et.cli.main",
        "run",
        "--bundle",
        str(ray_data["bundle"]),
        "--batch",
        str(batch),
        "--output",
        str(out),
        "--seed",
        "3",
        "--threads",
        "1",
        "--ray",
        address,
    ]
    stderr = ctrl_c_after_lines(command, out, ROOT)
    assert "Traceback" not in stderr and "--resume" in stderr
    assert 2 <= len(read_records(out)) < 2 * len(lines) and out.read_text().endswith("\n")
    resumed = subprocess.run(
        [*command, "--resume"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    records = read_records(out)
    assert [record["index"] for record in records] == list(range(2 * len(lines)))
    assert comparable(records[: len(lines)]) == comparable(local)
    again = [{**record, "index": record["index"] - len(lines)} for record in records[len(lines) :]]
    assert _without_line_numbers(comparable(again)) == _without_line_numbers(comparable(local))


def _without_line_numbers(records: list[dict]) -> list[dict]:
    """Records whose error says "line N" with N cut: the second copy of a line has another N."""
    return [
        {**record, "error": re.sub(r"^line \d+", "line", record["error"])}
        if "error" in record
        else record
        for record in records
    ]
