"""benchmarks/replication.py: the cell plan and the markdown it writes (no models run here)."""

from benchmarks import replication, replication_report


def _cell(dataset, system, reasoner, correct):
    return {
        "dataset": dataset,
        "system": system,
        "reasoner": reasoner,
        "accuracy": correct / 10,
        "ci95": [0.1, 0.9],
        "scored": 10,
        "parse_failures": 1,
        "chance": 0.25,
        "limit": 10,
        "median_s": {"extract": 0.1, "think": 2.0, "question": 2.1},
        "categories": {
            "count": {"accuracy": 0.5, "scored": 4},
            "text": {"accuracy": 0.2, "scored": 6},
        },
        "command": f"python -m benchmarks.replication --limit 10 --dataset {dataset}",
    }


def test_cells_run_end_to_end_once_per_dataset_then_each_reasoner():
    plan = replication.cells(["scenes", "easy-vqa"], ["smollm2-135m", "qwen2.5-coder-0.5b"])
    assert plan[0] == ("scenes", "end-to-end", None) and len(plan) == 10
    assert sum(system == "end-to-end" for _, system, _ in plan) == 2
    assert ("easy-vqa", "extract+think", "qwen2.5-coder-0.5b") in plan
    with_oracle = replication.cells(["scenes", "easy-vqa"], ["smollm2-135m"], oracle=True)
    assert [c for c in with_oracle if c[1] == "oracle+think"] == [
        ("scenes", "oracle+think", "smollm2-135m")
    ]


def test_markdown_has_a_table_per_dataset(tmp_path):
    results = {
        "cells": {
            "a": _cell("scenes", "end-to-end", None, 3),
            "b": _cell("scenes", "extract+think", "smollm2-135m", 7),
            "c": _cell("easy-vqa", "caption+think", "smollm2-135m", 5),
        }
    }
    text = replication_report.write_markdown(results, tmp_path / "r.md").read_text()
    assert (
        "## held-out generated scenes (in domain)" in text
        and "## easy-VQA test (out of domain)" in text
    )
    assert (
        "| extract+think | smollm2-135m | 70.0% [10.0-90.0] | 10 | 1 | 25.0% | 2.10 | 0.10 | 2.00 |"
        in text
    )
    assert "| end-to-end | - | 50.0% (n=4) | 20.0% (n=6) |" in text
    assert (
        text.count("Reproduce a row:") == 2
        and text.count(": `python -m benchmarks.replication") == 3
    )


def test_data_version_reads_the_code_that_makes_each_dataset():
    # easy-vqa once hashed a file that had moved: FileNotFoundError before any cell ran.
    versions = {name: replication.data_version(name) for name in ("scenes", "shifted", "easy-vqa")}
    assert versions["scenes"] == versions["shifted"] != versions["easy-vqa"]
    assert all(len(v) == 12 and int(v, 16) >= 0 for v in versions.values())
