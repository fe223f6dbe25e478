"""kill -9 a real `edge-et run --batch` at seeded random moments, resume, and compare.

The batch runs with swap residency, so kills land in the extraction pass (the extractions
side file), between the passes, and in the reasoning pass (the results file). After every
kill the files must hold whole lines and no line twice; the resumed run's final output must
equal an uninterrupted run's, line for line (timings aside).
"""

import json
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
KILLS = 20
LINES = 8
# Long enough that a line is in flight most of the time, short enough that the whole file
# stays around a minute on a loaded 2-core machine.
DECODING = {"extract": {"max_tokens": 96}, "think": {"budget": 24, "answer_budget": 4}}
TIMING_FIELDS = ("stages", "peak_rss_bytes")


@pytest.fixture(scope="module")
def kill_setup(tiny_bundle, tmp_path_factory):
    folder = tmp_path_factory.mktemp("kill")
    bundle = folder / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    manifest = json.loads((bundle / "bundle.json").read_text())
    (bundle / "bundle.json").write_text(json.dumps(manifest | {"decoding": DECODING}))
    lines = []
    for i in range(LINES):
        Image.new("RGB", (40 + 8 * i, 40), (30 * i, 120, 200 - 20 * i)).save(folder / f"p{i}.png")
        lines.append(
            {
                "image": f"p{i}.png",
                "question": f"What color is shape {i}?\nA. red\nB. blue",
                "id": f"q{i}",
            }
        )
    lines.insert(3, {"image": "missing.png", "question": "Where?", "id": "bad"})  # an error line
    batch = folder / "batch.jsonl"
    batch.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return bundle, batch, folder


def command(bundle: Path, batch: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "edge_et.cli.main",
        "run",
        "--bundle",
        str(bundle),
        "--batch",
        str(batch),
        "--output",
        str(out),
        "--residency",
        "swap",
        "--seed",
        "7",
        "--threads",
        "1",
        *extra,
    ]


def comparable(path: Path) -> list[dict]:
    return [
        {k: v for k, v in json.loads(line).items() if k not in TIMING_FIELDS}
        for line in path.read_text().splitlines()
    ]


def assert_whole_and_unique(path: Path) -> None:
    """What a killed run leaves: at most a torn last line, no line twice."""
    if not path.exists():
        return
    text = path.read_text()
    whole = text[: text.rfind("\n") + 1]
    indices = [json.loads(line)["index"] for line in whole.splitlines()]
    assert len(indices) == len(set(indices)), f"a line was written twice in {path.name}"


def lines_in(path: Path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


@pytest.fixture(scope="module")
def reference(kill_setup):
    """An uninterrupted run: its comparable lines, and how long it took (kill times scale to it)."""
    bundle, batch, folder = kill_setup
    path = folder / "reference.jsonl"
    started = time.monotonic()
    done = subprocess.run(
        command(bundle, batch, path), cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    expected = comparable(path)
    assert [r["index"] for r in expected] == list(range(LINES + 1))
    return expected, time.monotonic() - started


@pytest.mark.slow
def test_kill_9_at_random_points_then_resume_equals_an_uninterrupted_run(kill_setup, reference):
    bundle, batch, folder = kill_setup
    expected, span = reference
    rng = random.Random(15)
    out, kills, chains, phases = folder / "killed.jsonl", 0, 0, set()
    while kills < KILLS:
        process = subprocess.Popen(
            command(bundle, batch, out, "--resume"),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            process.wait(timeout=rng.uniform(0.2, span))
            finished = True
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            finished, kills = False, kills + 1
            phases.add("reasoning" if lines_in(out) else "extraction")
        assert_whole_and_unique(out)
        assert_whole_and_unique(out.with_name(out.name + ".extractions.jsonl"))
        if finished:  # this chain of kills got to the end: check it, start another
            assert process.returncode == 0, process.stderr.read()
            assert comparable(out) == expected
            out.unlink()
            chains += 1
        process.stderr.close()
    assert phases == {"extraction", "reasoning"}, phases  # kills landed in both passes
    final = subprocess.run(
        command(bundle, batch, out, "--resume"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert final.returncode == 0, final.stderr
    assert comparable(out) == expected  # every line exactly once, as if never interrupted
    assert not out.with_name(out.name + ".extractions.jsonl").exists()


def side_file(out: Path) -> Path:
    return out.with_name(out.name + ".extractions.jsonl")


def one_error_line(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    return errors[0]


@pytest.mark.slow
def test_file_size_limit_while_writing_results_is_one_line_and_keeps_every_whole_line(
    kill_setup, reference
):
    """`ulimit -f` (EFBIG, like a full disk): exit 2, earlier lines kept, --resume finishes."""
    bundle, batch, folder = kill_setup
    out = folder / "limited.jsonl"
    first = (folder / "reference.jsonl").read_text().splitlines()[0]
    limit = len(first.encode()) * 3  # room for a few result lines, not all

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG from write() instead of death

    # co-resident: no extractions side file, so the results file is the one that hits the limit
    done = subprocess.run(
        command(bundle, batch, out, "--residency", "co-resident"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=small_files,
    )
    assert done.returncode == 2
    assert "file size limit" in one_error_line(done.stderr)
    kept = comparable(out)  # whole lines only: json.loads would fail on a torn one
    assert 0 < len(kept) < len(reference[0]) and kept == reference[0][: len(kept)]
    again = subprocess.run(
        command(bundle, batch, out, "--resume", "--residency", "co-resident"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    assert comparable(out) == reference[0]


@pytest.mark.slow
def test_model_file_damaged_after_the_plan_is_one_line_and_resume_keeps_the_extractions(
    kill_setup, reference
):
    """The reasoning GGUF is cut short while the extraction pass runs: exit 2 in one line when
    it loads; with the file restored, --resume runs only the reasoning."""
    bundle, batch, folder = kill_setup
    damaged = folder / "damaged-bundle"
    shutil.copytree(bundle, damaged)
    model = damaged / "reasoning.f16.gguf"
    intact = model.read_bytes()
    out = folder / "damaged.jsonl"
    process = subprocess.Popen(
        command(damaged, batch, out),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while lines_in(side_file(out)) < 1 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    model.write_bytes(intact[: len(intact) // 2])  # after the plan, before the reasoning load
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 2
    assert "reasoning model" in one_error_line(stderr)
    assert lines_in(side_file(out)) == LINES + 1 and lines_in(out) == 0
    model.write_bytes(intact)
    again = subprocess.run(
        command(damaged, batch, out, "--resume", "--json"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stderr.strip().splitlines()[-1])
    assert summary["model_loads"] == 1  # the perception model was not needed again
    assert comparable(out) == reference[0]


def test_resume_refuses_a_changed_input_or_other_settings_in_one_line(kill_setup, tmp_path):
    bundle, batch, folder = kill_setup
    changed = tmp_path / "batch.jsonl"
    changed.write_text(batch.read_text())
    for name in ("p0.png", "p1.png"):
        shutil.copy(folder / name, tmp_path / name)
    out = tmp_path / "out.jsonl"
    out.write_text("")
    resume_state = {
        "format": "edge-et.resume/1",
        "input": str(changed),
        "input_sha256": "0" * 64,
        "settings": {},
    }
    (tmp_path / "out.jsonl.resume.json").write_text(json.dumps(resume_state))
    done = subprocess.run(
        command(bundle, changed, out, "--resume"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "changed since" in one_error_line(done.stderr)


def wait_for_lines(path: Path, count: int, process: subprocess.Popen, limit_s: float = 120) -> None:
    deadline = time.monotonic() + limit_s
    while lines_in(path) < count and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.mark.slow
def test_ctrl_c_finishes_the_line_says_how_to_resume_and_a_second_one_stops_at_once(
    kill_setup, reference
):
    bundle, batch, folder = kill_setup
    out = folder / "interrupted.jsonl"
    process = subprocess.Popen(
        command(bundle, batch, out),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_lines(side_file(out), 2, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    stopped = [line for line in stderr.splitlines() if line.startswith("stopped by SIGINT")]
    assert len(stopped) == 1 and "left; resume with: edge-et run" in stopped[0], stderr
    assert stopped[0].rstrip().endswith("--resume") and "Traceback" not in stderr

    process = subprocess.Popen(
        command(bundle, batch, out, "--resume"),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_lines(out, 1, process)
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGINT)  # the second: out at once, files still whole
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in stderr
    assert_whole_and_unique(out)
    done = subprocess.run(
        command(bundle, batch, out, "--resume"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert comparable(out) == reference[0]


def test_resume_without_an_output_file_is_one_line(kill_setup):
    bundle, batch, _ = kill_setup
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_et.cli.main",
            "run",
            "--bundle",
            str(bundle),
            "--batch",
            str(batch),
            "--resume",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "--resume needs --output" in one_error_line(done.stderr)


def test_lone_surrogates_in_a_batch_line_are_that_line_s_error(kill_setup, tmp_path):
    """Found by fuzzing: JSON escapes can hold text UTF-8 cannot encode (a path, a question)."""
    bundle, _, folder = kill_setup
    batch = tmp_path / "batch.jsonl"
    batch.write_text(
        '{"image": "\\ud800.png", "question": "q"}\n'
        f'{{"image": "{folder / "p0.png"}", "question": "What \\udc80?"}}\n'
    )
    out = tmp_path / "out.jsonl"
    done = subprocess.run(
        command(bundle, batch, out), cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    errors = [json.loads(line)["error"] for line in out.read_text().splitlines()]
    assert "unpaired surrogate" in errors[0] and "not a character" in errors[1]
