"""Malformed checkpoints given to `edge-et export gguf | onnx | mobile`: one `error:` line, exit 2,
nothing written at --out (tests/fuzz/test_fuzz_checkpoints.py fuzzes the same checks)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def edge_et(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "edge_et.cli.main", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _config(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def _cut(folder: Path, name: str) -> None:
    data = (folder / name).read_bytes()
    (folder / name).write_bytes(data[: len(data) // 2])


BREAKS = {
    "hidden_size is a string": (
        lambda f: _config(f, hidden_size="256"),
        r"config\.json: hidden_size is \"256\"",
    ),
    "tokenizer.json cut short": (
        lambda f: _cut(f, "tokenizer.json"),
        r"tokenizer\.json: is not valid JSON",
    ),
    "no weights": (lambda f: (f / "model.safetensors").unlink(), r"has no weights"),
    "weights cut short": (
        lambda f: _cut(f, "model.safetensors"),
        r"model\.safetensors: is not a valid safetensors",
    ),
    "an unsupported architecture": (
        lambda f: _config(f, model_type="mamba", hidden_size=None),
        r"model_type 'mamba' is not supported; supported model types: .*qwen3",
    ),
    "heads do not divide": (
        lambda f: _config(f, num_key_value_heads=3),
        r"not a multiple of num_key_value_heads",
    ),
    # Typed and consistent, yet not what the weights hold: checked by the converter itself.
    "vocab smaller than the tokenizer": (
        lambda f: _config(f, vocab_size=8),
        r"llama\.cpp's converter could not convert hf: AssertionError \(assert ",
    ),
}


@pytest.fixture
def broken(tiny_bundle, tmp_path):
    def make(what: str) -> Path:
        folder = tmp_path / "hf"
        shutil.copytree(tiny_bundle.parent / "hf" / "qwen3", folder)
        BREAKS[what][0](folder)
        return folder

    return make


def _assert_one_line_and_nothing_left(
    done: subprocess.CompletedProcess, out: Path, pattern: str
) -> None:
    assert done.returncode == 2, done.stderr[-3000:]
    # (the progress display, off a terminal, ends with an empty line of its own)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert re.search(pattern, done.stderr), done.stderr
    assert not out.exists() and not [p for p in out.parent.iterdir() if ".partial-" in p.name]


@pytest.mark.parametrize("what", list(BREAKS))
def test_export_gguf_refuses_in_one_line(broken, tmp_path, what):
    out = tmp_path / "bundle"
    done = edge_et(
        "export",
        "gguf",
        "--reasoning",
        str(broken(what)),
        "--quant",
        "F16",
        "--no-validate",
        "--out",
        str(out),
    )
    _assert_one_line_and_nothing_left(done, out, BREAKS[what][1])


@pytest.mark.parametrize("command", [["onnx"], ["mobile"]])
def test_export_onnx_and_mobile_refuse_before_any_work(broken, tmp_path, command):
    pytest.importorskip("optimum.exporters.onnx")
    out = tmp_path / "bundle"
    done = edge_et(
        "export", *command, "--reasoning", str(broken("hidden_size is a string")), "--out", str(out)
    )
    _assert_one_line_and_nothing_left(done, out, BREAKS["hidden_size is a string"][1])


def test_a_converter_failure_is_said_in_its_own_last_words():
    from export.gguf.converter import failure_line

    output = (
        'INFO:hf-to-gguf:Loading model: hf\nTraceback (most recent call last):\n  File "convert.py", '
        "line 9, in <module>\n    main()\nValueError: Failed to detect model architecture\n"
    )
    assert failure_line(output) == "ValueError: Failed to detect model architecture"
    assert (
        failure_line("just a last line\n\n") == "just a last line"
        and failure_line("") == "no output"
    )
    bare = (
        '  File "convert_hf_to_gguf.py", line 7, in get_vocab_base\n'
        "    assert max(tokenizer.vocab.values()) < vocab_size\n           ^^^^^^^^\nAssertionError\n"
    )
    assert (
        failure_line(bare) == "AssertionError (assert max(tokenizer.vocab.values()) < vocab_size)"
    )
