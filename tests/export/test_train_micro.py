"""The micro perception model: its trainer (a few steps on a tiny config lower the loss), its
token layout against libmtmd's, and the committed, trained model extracting held-out scenes
through llama.cpp."""

import io
import json
from contextlib import ExitStack
from pathlib import Path

import pytest

from edge_et.errors import EdgeEtError
from export.scenes import FORMS, example, training_pair
from export.scenes.forms import HELDOUT_SEED

ROOT = Path(__file__).resolve().parents[2]
MICRO = ROOT / "models" / "micro"
EXTRACT = MICRO / "extract"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from export.micro.train import train

    out = tmp_path_factory.mktemp("micro")
    summary = train(
        form="extract",
        seed=0,
        out=out,
        steps=30,
        batch=4,
        lr=3e-3,
        warmup=3,
        config="test",
        threads=1,
        log_every=5,
        eval_every=30,
        eval_size=8,
        log=lambda line: None,
    )
    return out, summary


def test_a_few_training_steps_lower_the_loss(tiny_run):
    out, summary = tiny_run
    history = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert history[-1]["loss"] < history[0]["loss"] * 0.8
    assert summary["heldout_loss"] < 6.0 and summary["random_weights"] is False
    recipe = json.loads((out / "hf" / "tiny_recipe.json").read_text())
    assert recipe["trained"] and recipe["form"] == "extract" and recipe["examples_end"] == 120
    # The micro model rebuilt from its GGUFs recovers its recipe as the summary minus SUMMARY_ONLY.
    from export.micro.train import SUMMARY_ONLY

    assert recipe == {key: value for key, value in summary.items() if key not in SUMMARY_ONLY}


def test_tuning_from_a_checkpoint_continues_the_scene_stream(tiny_run, tmp_path):
    from export.micro.train import train

    base, _ = tiny_run
    summary = train(
        form="direct",
        seed=1,
        out=tmp_path,
        steps=2,
        batch=4,
        warmup=1,
        init=base / "hf",
        threads=1,
        eval_every=2,
        eval_size=4,
        log=lambda line: None,
    )
    assert (summary["examples_start"], summary["examples_end"]) == (120, 128)
    assert summary["init"]["form"] == "extract"


def test_the_cli_trains_and_continues_a_run(tiny_run, tmp_path):
    import subprocess
    import sys

    def train_cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "edge_et.cli.main", "export", "train", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )

    done = train_cli(
        "--form",
        "caption",
        "--config",
        "test",
        "--steps",
        "3",
        "--batch",
        "2",
        "--warmup",
        "1",
        "--threads",
        "1",
        "--init",
        str(tiny_run[0] / "hf"),
        "--out",
        str(tmp_path / "run"),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (
        summary["form"] == "caption"
        and summary["steps"] == 3
        and summary["init"]["form"] == "extract"
    )
    assert json.loads((tmp_path / "run" / "train_summary.json").read_text()) == summary
    assert (tmp_path / "run" / "hf" / "model.safetensors").is_file()
    done = train_cli("--form", "poem", "--out", str(tmp_path / "other"))
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        "error: unknown --form 'poem'; choose one of: direct, caption, extract, direct-text"
    ]


def test_bad_trainer_input_is_one_user_error(tiny_run, tmp_path):
    from export.micro.train import train

    with pytest.raises(EdgeEtError, match="unknown --form"):
        train(form="poem", seed=0, out=tmp_path)
    with pytest.raises(EdgeEtError, match="not empty"):
        train(form="caption", seed=0, out=tiny_run[0])
    with pytest.raises(EdgeEtError, match="not a checkpoint trained"):
        train(form="caption", seed=0, out=tmp_path / "x", init=tmp_path)


# -- the committed model ------------------------------------------------------------------


def _committed_bundle(tmp_path: Path) -> Path:
    from export.bundle import Stage, write_bundle

    write_bundle(
        tmp_path,
        name="micro",
        decoding={"extract": {"max_tokens": 320}},
        perception=Stage(
            EXTRACT / "perception.F16.gguf", mmproj=EXTRACT / "mmproj.F16.gguf", n_ctx=2048
        ),
    )
    return tmp_path


def _png(ex):
    from edge_et.core.images import load_image_bytes

    buffer = io.BytesIO()
    ex.image().save(buffer, format="PNG")
    return load_image_bytes(buffer.getvalue(), name=ex.id)


def test_training_layout_is_the_one_llama_cpp_builds(tmp_path):
    """Token for token, the prompt the trainer used is the one the runtime sends (pitfall 3)."""
    import llama_cpp.mtmd_cpp as mtmd
    from transformers import AutoTokenizer

    from edge_et.backends.llama_cpp.model import LlamaCppModel
    from edge_et.core.chat import render_user_turn
    from export.micro.model import MICRO as SHAPE
    from export.micro.model import Layout

    layout = Layout(AutoTokenizer.from_pretrained(EXTRACT), SHAPE)
    model = LlamaCppModel(
        model_path=str(EXTRACT / "perception.F16.gguf"),
        mmproj_path=str(EXTRACT / "mmproj.F16.gguf"),
        n_ctx=1024,
    )
    try:
        for form in FORMS:
            ex = example(HELDOUT_SEED, 5)
            request, _ = training_pair(ex, form)
            prompt = render_user_turn(
                model.chat_template,
                model.media_marker + "\n" + request,
                bos_text=model.bos_text,
                eos_text=model.eos_text,
            )
            assert not model._add_special(prompt)  # no BOS beyond the template's own
            got = []
            with ExitStack() as scope:
                chunks = model._tokenize_with_image(prompt, _png(ex), scope)
                for i in range(mtmd.mtmd_input_chunks_size(chunks)):
                    chunk = mtmd.mtmd_input_chunks_get(chunks, i)
                    if mtmd.mtmd_input_chunk_get_type(chunk) == mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT:
                        got += model._chunk_tokens(chunk)
                    else:
                        got += [layout.image_id] * mtmd.mtmd_input_chunk_get_n_tokens(chunk)
            assert got == list(layout.prompt(request)), form
    finally:
        model.close()


def test_committed_model_is_small_and_its_parity_report_passes_todays_judge():
    """The files are the ones the committed bundle.json names, and the parity measurements
    recorded for them pass the current thresholds (the judge's code, not the stored `ok`).
    That the weights are trained shows in the held-out extraction test below."""
    from edge_et.bundle.manifest import Bundle
    from export.parity import gguf as parity_judge

    files = [EXTRACT / name for name in ("perception.F16.gguf", "mmproj.F16.gguf")]
    assert sum(f.stat().st_size for f in files) < 40_000_000
    Bundle.load(EXTRACT, verify_checksums=True)  # BundleError when a file is not the named one
    report = json.loads((EXTRACT / "parity.json").read_text())["perception"]
    assert report["text"]["gguf"] == "perception.F16.gguf" and report["quant"] == "F16"
    assert parity_judge.passes(report) == (True, "")


# Held-out scenes (seed 1), with sentences the committed model gets right on each (measured).
# It states layouts and values well and counts less well (70% sentence recall on 100
# held-out scenes, README); these pin what it does know, so a broken export or layout shows.
HELDOUT_CHECKS = [
    (2, "a large red square in the middle left and a large red circle in the middle right"),
    (3, "an orange bar with the value 6, a yellow bar with the value 4 and a blue bar"),
    (5, "The bar colors from left to right are green, yellow, red and blue."),
    (7, "a large purple triangle in the top middle, a small yellow square in the top right"),
]


def test_committed_model_extracts_held_out_scenes_through_llama_cpp(tmp_path):
    from edge_et.bundle.manifest import Bundle
    from edge_et.runtime.pipeline import Pipeline, RunOptions
    from export.micro.eval import score

    recalls = []
    with Pipeline(Bundle.load(_committed_bundle(tmp_path))) as pipeline:
        for index in range(8):
            ex = example(HELDOUT_SEED, index)
            result = pipeline.perceive(
                _png(ex), ex.question.prompt_text(), RunOptions(mode="extract", seed=0)
            )
            recalls.append(score("extract", ex, result.extraction, "")["sentence_recall"])
            for check_index, phrase in HELDOUT_CHECKS:
                if index == check_index:
                    assert phrase in result.extraction, result.extraction
    assert sum(recalls) / len(recalls) >= 0.5, recalls  # measured 0.66 on these 8


def test_demo_bundle_answers_the_sample_right(tmp_path):
    """What `make demo` runs: the trained extract model and the demo reasoner, seed 0."""
    from edge_et.bundle.manifest import Bundle
    from edge_et.core.images import SAMPLE_ANSWER, SAMPLE_QUESTION, write_sample_image
    from edge_et.runtime.pipeline import Pipeline, RunOptions
    from export.demo import build_default_bundle

    bundle = Bundle.load(build_default_bundle(ROOT / "models" / "bundles" / "default"))
    assert not bundle.perception.random_weights and not bundle.reasoning.random_weights
    with Pipeline(bundle) as pipeline:
        result = pipeline.run(
            write_sample_image(tmp_path / "sample.png"), SAMPLE_QUESTION, RunOptions(seed=0)
        )
    assert "The circle is green." in result.extraction
    assert result.answer == SAMPLE_ANSWER, result.reasoning


def test_the_recipe_runs_every_round_and_resumes(tmp_path):
    from export.micro import recipe as micro_recipe

    seen = []
    summary = micro_recipe.train_recipe(
        form="extract",
        out=tmp_path / "run",
        config="test",
        scale=0.005,
        batch=2,
        threads=1,
        progress=lambda done, total, entry: seen.append((done, total)),
    )
    steps = micro_recipe.recipe_steps(0.005)
    assert seen[-1] == (sum(steps), sum(steps))
    chain, run = [], summary
    while isinstance(run, dict):
        chain.append((run["form"], run["steps"]))
        run = run.get("init")
    assert chain[::-1] == [("caption", steps[0])] + [("extract", n) for n in steps[1:]]
    assert (tmp_path / "run" / "hf" / "model.safetensors").is_file()
    # A stop after round 2: the rerun keeps rounds 0-1 and trains 2-3 again.
    rounds = sorted((tmp_path / "run" / "rounds").iterdir())
    for later in rounds[2:]:
        (later / "train_summary.json").unlink()
    import shutil

    shutil.rmtree(tmp_path / "run" / "hf")
    seen.clear()
    again = micro_recipe.train_recipe(
        form="extract",
        out=tmp_path / "run",
        config="test",
        scale=0.005,
        batch=2,
        threads=1,
        progress=lambda done, total, entry: seen.append(done),
    )
    assert min(seen) > sum(steps[:2]) and again["examples_end"] == summary["examples_end"]
