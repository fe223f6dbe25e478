"""The public API (`import edge_et`): open_pipeline, run with every image form, stream, error kinds.

Real llama.cpp on the tiny random bundle (shortened decoding): outputs are noise, so the tests
compare runs with each other, never with expected text.
"""

import dataclasses
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import edge_et
from edge_et.backends import _REGISTRY, backend_class
from tests.helpers.bundles import make_bundle
from tests.helpers.short_bundle import short_bundle

ROOT = Path(__file__).resolve().parents[2]
QUESTION = "What shape is left of the square?\nA. triangle\nB. circle\nC. star\nD. square"


@pytest.fixture(scope="module")
def bundle(tiny_bundle, tmp_path_factory) -> Path:
    return short_bundle(tiny_bundle, tmp_path_factory.mktemp("api"))


@pytest.fixture(scope="module")
def pipeline(bundle):
    with edge_et.open_pipeline(bundle, threads=1) as opened:
        yield opened


def test_open_pipeline_plans_and_returns_a_pipeline(bundle):
    with edge_et.open_pipeline(bundle, residency="auto", verify=True) as opened:
        assert isinstance(opened, edge_et.Pipeline)
        assert (
            opened.plan.decision == "co-resident"
        )  # the tiny models fit beside each other anywhere
        assert isinstance(opened.bundle, edge_et.Bundle)


def test_every_image_form_gives_the_same_extraction(pipeline, sample_image):
    with Image.open(sample_image) as opened:
        pil = opened.copy()
    forms = {
        "path": sample_image,
        "str": str(sample_image),
        "bytes": sample_image.read_bytes(),
        "pil": pil,
        "numpy": np.asarray(pil.convert("RGB")),
    }
    results = {
        name: pipeline.run(image, QUESTION, mode="extract", seed=0) for name, image in forms.items()
    }
    extractions = {name: result.extraction for name, result in results.items()}
    assert len(set(extractions.values())) == 1, extractions
    assert results["bytes"].image == "<bytes>" and results["path"].image == str(sample_image)


def test_keyword_options_and_a_run_options_object_agree(pipeline, sample_image):
    by_object = pipeline.run(sample_image, QUESTION, edge_et.RunOptions(mode="extract", seed=4))
    by_keywords = pipeline.run(sample_image, QUESTION, mode="extract", seed=4)
    overridden = pipeline.run(
        sample_image, QUESTION, edge_et.RunOptions(mode="direct"), mode="extract", seed=4
    )
    assert by_object.extraction == by_keywords.extraction == overridden.extraction
    with pytest.raises(edge_et.InputError, match="unknown option 'think'"):
        pipeline.run(sample_image, QUESTION, think=3)


def test_stream_yields_events_in_order_and_the_run_result(pipeline, sample_image):
    options = {"seed": 7, "temperature": 0.0}
    events = list(pipeline.stream(sample_image, QUESTION, **options))
    kinds = [type(event).__name__ for event in events]
    # extraction text, its stage, reasoning text, its stage, then the result: in that order
    order = ["ExtractionText", "StageFinished", "ReasoningText", "StageFinished", "Finished"]
    collapsed = [kind for i, kind in enumerate(kinds) if i == 0 or kind != kinds[i - 1]]
    assert collapsed == order, kinds
    finished = [e.stage for e in events if isinstance(e, edge_et.StageFinished)]
    assert finished == ["extract", "think"]
    result = events[-1].result
    assert (
        "".join(e.text for e in events if isinstance(e, edge_et.ExtractionText)).strip()
        == result.extraction
    )
    assert events[kinds.index("StageFinished")].stats is result.stages["extract"]

    ran = pipeline.run(sample_image, QUESTION, **options)
    for field in ("answer", "answer_matched", "extraction", "reasoning", "hint", "seed", "mode"):
        assert getattr(result, field) == getattr(ran, field), field


def test_closing_a_stream_stops_the_run_and_its_thread(pipeline, sample_image):
    calls = []
    stream = pipeline.stream(
        sample_image,
        QUESTION,
        seed=1,
        think_budget=400,
        answer_budget=100,
        on_reasoning_text=calls.append,
    )
    for event in stream:
        if isinstance(event, edge_et.ReasoningText):
            break
    at_close = len(calls)
    started = time.perf_counter()
    stream.close()
    # A hang guard, generous on purpose (a loaded 2-core runner); the counts below are the check.
    assert time.perf_counter() - started < 60
    assert not [t for t in threading.enumerate() if t.name == "edge-et-stream"]
    assert len(calls) <= at_close + 1  # at most the token in flight when it closed
    # The pipeline is still usable afterwards.
    assert pipeline.run(sample_image, QUESTION, mode="extract", seed=0).extraction is not None


def test_an_error_inside_a_stream_reaches_the_consumer(pipeline):
    stream = pipeline.stream(b"not an image", QUESTION)
    with pytest.raises(edge_et.InputError, match="cannot read image '<bytes>'"):
        next(stream)
    assert not [t for t in threading.enumerate() if t.name == "edge-et-stream"]


def test_a_bad_image_is_an_input_error(pipeline):
    with pytest.raises(edge_et.InputError, match="not a recognised image"):
        pipeline.run(b"\x00\x01garbage" * 20, QUESTION)
    with pytest.raises(edge_et.InputError, match="uint8 array"):
        pipeline.run(np.zeros((8, 8, 3), dtype=np.float32), QUESTION)


def test_a_broken_bundle_is_a_bundle_error(tmp_path):
    folder = make_bundle(tmp_path / "b")
    (folder / "llm.gguf").write_bytes(b"GGUF broken")
    with pytest.raises(edge_et.BundleError):
        edge_et.open_pipeline(folder)
    with pytest.raises(edge_et.BundleError, match="does not exist"):
        edge_et.open_pipeline(tmp_path / "nothing")


def test_a_refused_plan_says_how_many_bytes(bundle):
    with pytest.raises(edge_et.PlanRefused, match="memory plan: .*20.0 MiB") as refused:
        edge_et.open_pipeline(bundle, mem_budget="20MiB")
    assert refused.value.budget_bytes == 20 * 2**20
    assert refused.value.needed_bytes > refused.value.budget_bytes
    assert isinstance(refused.value, edge_et.EdgeEtError) and refused.value.exit_code == 2


def test_a_missing_backend_package_names_its_extra(monkeypatch):
    missing_module = dataclasses.replace(
        _REGISTRY["llama.cpp"], model_class="edge_et_no_such_module:Model"
    )
    monkeypatch.setitem(_REGISTRY, "llama.cpp", missing_module)
    with pytest.raises(edge_et.MissingExtra, match=r"pip install 'edge-et\[llama\]'") as missing:
        backend_class("llama.cpp")
    assert missing.value.extra == "llama"


def test_import_edge_et_loads_no_backend():
    probe = (
        "import sys, edge_et; print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('llama_cpp', 'onnxruntime', 'typer', 'rich')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_the_public_names():
    assert set(edge_et.__all__) >= {
        "open_pipeline",
        "Pipeline",
        "RunOptions",
        "Result",
        "StageStats",
        "Bundle",
        "plan_bundle",
        "ExtractionText",
        "ReasoningText",
        "StageFinished",
        "Finished",
        "EdgeEtError",
        "InputError",
        "BundleError",
        "PlanRefused",
        "MissingExtra",
        "ModelError",
    }
    assert all(hasattr(edge_et, name) for name in edge_et.__all__)
    assert edge_et.__version__


def test_plan_bundle_takes_what_open_pipeline_takes(bundle):
    from_folder = edge_et.plan_bundle(bundle, mem_budget="4GB", baseline=0)
    from_str = edge_et.plan_bundle(str(bundle), mem_budget="4GB", baseline=0)
    from_bundle = edge_et.plan_bundle(edge_et.Bundle.load(bundle), mem_budget="4GB", baseline=0)
    assert from_folder.to_dict() == from_str.to_dict() == from_bundle.to_dict()
    with pytest.raises(edge_et.InputError, match="a bundle folder or a Bundle, not int"):
        edge_et.plan_bundle(7)
    with pytest.raises(edge_et.BundleError):
        edge_et.plan_bundle(ROOT / "no-such-bundle")


def test_public_functions_document_args_returns_and_error_kinds():
    import inspect

    functions = [
        edge_et.open_pipeline,
        edge_et.plan_bundle,
        edge_et.decode_image,
        edge_et.hint_from_question,
        edge_et.Bundle.load,
        edge_et.Pipeline.run,
    ]
    for function in functions:
        doc = inspect.getdoc(function) or ""
        assert "Args:" in doc and "Returns:" in doc, function.__qualname__
        assert "Raises" in doc, function.__qualname__
        for name in inspect.signature(function).parameters:
            if name not in ("self", "cls", "values"):
                assert f"{name}:" in doc, (function.__qualname__, name)
    for name in edge_et.__all__:
        value = getattr(edge_et, name)
        if callable(value):
            assert inspect.getdoc(value), name
