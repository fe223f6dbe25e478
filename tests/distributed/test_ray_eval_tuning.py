"""`eval --ray` and `data extract-tuning --ray` on a local Ray (2 CPUs, tiny bundle): the same
predictions, report and targets as the local run, through the same resume code. (The eval
command itself runs on Ray in the two-node test.)"""

import json
import subprocess
import sys
from pathlib import Path

from edge_et.distributed.batch import RayRunner
from edge_et.distributed.cluster import RaySettings
from edge_et.distributed.tuning import make_targets_on_ray
from edge_et.eval import extract_tuning as tuning
from edge_et.eval.resumable import EvalRun
from edge_et.eval.run import read_eval_file
from edge_et.runtime.api import open_pipeline
from edge_et.runtime.batch import run_batch
from edge_et.runtime.pipeline import RunOptions
from tests.helpers.ray_cluster import comparable, ctrl_c_after_lines, read_records

ROOT = Path(__file__).resolve().parents[2]
MODES = ["extract-think", "direct"]
SHORT = {
    "statement_decoding": tuning.StageDecoding(max_tokens=6),
    "target_decoding": tuning.StageDecoding(max_tokens=6),
}


def evaluate(bundle: Path, data: Path, predictions: Path, runner, *, resume=False, stop_after=None):
    asked = []
    with open_pipeline(bundle, threads=1) as pipeline:
        run = EvalRun(
            pipeline, read_eval_file(data), MODES, RunOptions(), predictions, seed=5, resume=resume
        )
        return run.run(
            lambda: asked.append(1),
            runner=runner,
            stop=lambda: stop_after is not None and len(asked) >= stop_after,
        )


def scores(report) -> dict:
    return {
        mode: (r.overall.to_dict(), [(row.id, row.letter, row.error) for row in r.rows])
        for mode, r in report.modes.items()
    }


def test_ray_eval_equals_the_local_one_and_resumes(ray_session, ray_data, tmp_path):
    bundle, data = ray_data["bundle"], ray_data["eval"]
    local = evaluate(bundle, data, tmp_path / "local.jsonl", run_batch)
    on_ray = RayRunner(RaySettings(), 1)
    evaluate(
        bundle, data, tmp_path / "ray.jsonl", on_ray, stop_after=4
    )  # stopped in the first mode
    assert len(read_records(tmp_path / "ray.jsonl")) == 4
    report = evaluate(bundle, data, tmp_path / "ray.jsonl", on_ray, resume=True)
    assert scores(report) == scores(local)
    assert comparable(read_records(tmp_path / "ray.jsonl")) == comparable(
        read_records(tmp_path / "local.jsonl")
    )
    assert report.modes["extract-think"].model_loads == 2  # one perception and one reasoning actor


def test_ray_extract_tuning_writes_the_local_targets_and_skips_what_is_done(
    ray_session, ray_data, tmp_path
):
    pairs, _ = tuning.read_pairs(ray_data["qa"])
    with open_pipeline(ray_data["bundle"], threads=1) as pipeline:
        local = tuning.make_targets(pipeline, pairs, tmp_path / "local.jsonl", seed=2, **SHORT)
        on_ray = make_targets_on_ray(
            pipeline, pairs, tmp_path / "ray.jsonl", RaySettings(), threads=1, seed=2, **SHORT
        )
        again = make_targets_on_ray(
            pipeline, pairs, tmp_path / "ray.jsonl", RaySettings(), threads=1, seed=2, **SHORT
        )

    def without_stats(path):
        return [{k: v for k, v in r.items() if k != "stages"} for r in read_records(path)]

    assert without_stats(tmp_path / "ray.jsonl") == without_stats(tmp_path / "local.jsonl")
    assert (on_ray.written, on_ray.failed) == (local.written, local.failed) == (3, 1)
    assert "file not found" in on_ray.failures[0] and on_ray.model_loads == 2
    assert (again.written, again.skipped) == (0, 3)  # the broken pair is retried, the rest done


def test_cli_extract_tuning_on_ray_stops_on_ctrl_c_and_the_same_command_continues(
    ray_session, ray_data, tmp_path
):
    """A real `data extract-tuning --ray`, SIGINT once 2 targets are written: exit 130, one line
    with the count and the command; that command writes the rest, every pair once."""
    address = ray_session.get_runtime_context().gcs_address
    questions = [json.loads(line) for line in ray_data["eval"].read_text().splitlines()]
    qa = ray_data["folder"] / "qa-long.jsonl"  # enough pairs that the signal lands mid-run
    qa.write_text(
        "".join(
            json.dumps({**q, "id": f"{q['id']}-{copy}"}) + "\n"
            for copy in range(3)
            for q in questions
        )
    )
    out = tmp_path / "t.jsonl"
    command = [
        sys.executable,
        "-m",
        "edge_et.cli.main",
        "data",
        "extract-tuning",
        "--teacher",
        str(ray_data["bundle"]),
        "--in",
        str(qa),
        "--out",
        str(out),
        "--threads",
        "1",
        "--statement-tokens",
        "6",
        "--target-tokens",
        "6",
        "--ray",
        address,
    ]
    stderr = ctrl_c_after_lines(command, out, ROOT)
    assert "stopped by SIGINT" in stderr and "the same command continues" in stderr
    assert "ray: 1 reasoning actor(s)" in stderr and "Traceback" not in stderr
    written = len(read_records(out))
    assert 2 <= written < len(questions) * 3
    done = subprocess.run(
        [*command, "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["written"] == len(questions) * 3 - written
    ids = [record["id"] for record in read_records(out)]
    assert sorted(ids) == sorted(json.loads(line)["id"] for line in qa.read_text().splitlines())
