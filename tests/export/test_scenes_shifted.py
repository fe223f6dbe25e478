"""The style-shifted held-out scenes (matplotlib): their truths hold in the model's view, and no
training stream can reach them."""

import numpy as np
import pytest

from edge_et.errors import EdgeEtError
from export.scenes.forms import SHIFTED_SEED, STREAMS, example
from export.scenes.shifted import PALETTE
from export.scenes.varied import MODEL, model_view

EXAMPLES = [example(SHIFTED_SEED, i, "shifted") for i in range(16)]


def test_shifted_scenes_are_drawn_by_matplotlib_and_never_a_training_stream():
    assert all(ex.id.startswith("m2-") and "figure" in ex.scene for ex in EXAMPLES)
    assert "shifted" not in STREAMS
    from export.micro.train import train

    with pytest.raises(EdgeEtError, match="unknown --scenes"):
        train(form="extract", seed=0, out="/nonexistent", scenes="shifted", config="test")


def test_each_shape_is_in_its_cell_with_its_colour_in_the_model_view():
    from matplotlib.colors import to_rgb

    checked = 0
    for ex in EXAMPLES:
        if ex.scene["kind"] != "shapes":
            continue
        view = np.asarray(model_view(ex.image()), dtype=np.int32)
        for obj in ex.scene["objects"]:
            colour = np.array(to_rgb(PALETTE[obj["color"]])) * 255
            third = MODEL / 3
            x0, y0 = int(obj["col"] * third), int(obj["row"] * third)
            cell = view[y0 : y0 + int(third), x0 : x0 + int(third)]
            close = np.abs(cell - colour).sum(axis=2) < 60
            assert close.sum() >= 4, (ex.id, obj)  # its colour is drawn inside its own cell
            checked += 1
    assert checked > 12


def test_micro_eval_scores_the_committed_model_on_shifted_pictures():
    from pathlib import Path

    from export.micro.eval import evaluate

    bundle = Path(__file__).resolve().parents[2] / "models" / "micro" / "extract"
    report = evaluate(bundle, "extract", limit=2, stream="shifted")
    assert report["stream"] == "shifted" and report["examples"] == 2
    assert 0.0 <= report["sentence_recall"] <= 1.0 and "facts_present" in report
