"""Bundle validation: every broken bundle is one clear line, before any model loads."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge_et.bundle.manifest import Bundle
from edge_et.errors import BundleError
from edge_et.formats.gguf import read_gguf_info
from tests.helpers.bundles import DELETE, make_bundle
from tests.helpers.ggufs import text_gguf, write_gguf

ROOT = Path(__file__).resolve().parents[2]


def test_good_bundle_loads_with_header_facts(tmp_path):
    bundle = Bundle.load(make_bundle(tmp_path / "b"), verify_checksums=True)
    assert bundle.perception.arch == "qwen2vl" and bundle.reasoning.arch == "qwen3"
    assert bundle.reasoning.model_info.context_length == 4096
    assert bundle.reasoning.model_info.vocab_size == 3
    assert bundle.perception.mmproj_path.name == "mmproj.gguf"


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"format": "edge-et.bundle/9"}, "format is 'edge-et.bundle/9'"),
        ({"perception": DELETE, "reasoning": DELETE}, "neither 'perception' nor 'reasoning'"),
        ({"perception__backend": "tensorrt"}, "known backends: llama.cpp"),
        ({"perception__model": 3}, "'perception.model' is required"),
        ({"reasoning__thinking": "yes"}, "'reasoning.thinking' has the wrong type"),
        ({"reasoning__n_ctx": 4}, "n_ctx' must be at least 16"),
        ({"name": ["x"]}, "'name' must be a str"),
        ({"answer": {"force_letter": "yes"}}, "'answer.force_letter' must be true or false"),
        ({"answer": ["force_letter"]}, "'answer' must be a dict"),
        ({"reasoning__model": "/etc/passwd"}, "must be relative to the bundle"),
        ({"reasoning__model": "../outside.gguf"}, "escapes the bundle folder"),
        ({"reasoning__model": "gone.gguf"}, "file 'gone.gguf' is missing"),
        ({"perception__mmproj": DELETE}, "needs an 'mmproj'"),
        ({"perception__mmproj": "llm.gguf"}, "not a vision projector"),
        ({"perception__model": "mmproj.gguf", "perception__arch": DELETE}, "is an mmproj"),
        ({"perception__arch": "llama"}, "architecture 'qwen2vl', but bundle.json says 'llama'"),
        ({"reasoning__mmproj": "mmproj.gguf"}, "reasoning model is text-only"),
    ],
)
def test_broken_manifests_fail_with_one_line(tmp_path, changes, message):
    (tmp_path / "outside.gguf").write_bytes(b"GGUF")
    folder = make_bundle(tmp_path / "b", **changes)
    with pytest.raises(BundleError) as caught:
        Bundle.load(folder)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_symlink_escaping_the_bundle_is_refused(tmp_path):
    folder = make_bundle(tmp_path / "b")
    text_gguf(tmp_path / "elsewhere.gguf")
    (folder / "llm.gguf").unlink()
    os.symlink(tmp_path / "elsewhere.gguf", folder / "llm.gguf")
    with pytest.raises(BundleError, match="escapes the bundle folder"):
        Bundle.load(folder)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"not a gguf at all, just text padding padding", "bad magic"),
        (
            b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 8 + b"\x05" + b"\x00" * 7 + b"\x10",
            "truncated",
        ),
        (b"GG", "too small"),
    ],
)
def test_damaged_model_files(tmp_path, content, message):
    folder = make_bundle(tmp_path / "b")
    (folder / "llm.gguf").write_bytes(content)
    with pytest.raises(BundleError, match=message):
        Bundle.load(folder)


def test_checksum_mismatch_only_when_verifying(tmp_path):
    folder = make_bundle(tmp_path / "b")
    write_gguf(folder / "llm.gguf", "qwen3", **{"general.name": "swapped"})
    Bundle.load(folder)
    with pytest.raises(BundleError, match="does not match its sha256"):
        Bundle.load(folder, verify_checksums=True)


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.write_text("x"), "is not a folder"),
        (lambda p: p.mkdir(), "has no bundle.json"),
        (lambda p: (p.mkdir(), (p / "bundle.json").write_text("{oops")), "is not valid JSON"),
        (lambda p: (p.mkdir(), (p / "bundle.json").write_text("[1]")), "must hold a JSON object"),
    ],
)
def test_missing_or_unreadable_manifest(tmp_path, setup, message):
    target = tmp_path / "b"
    setup(target)
    with pytest.raises(BundleError, match=message):
        Bundle.load(target)


def test_gguf_header_reader_skips_string_arrays(tmp_path):
    info = read_gguf_info(text_gguf(tmp_path / "m.gguf"))
    assert info.architecture == "qwen3" and info.vocab_size == 3 and info.file_type == "F16"


def test_cli_reports_broken_bundle_in_one_line_without_loading_llama_cpp(tmp_path):
    folder = make_bundle(tmp_path / "b", reasoning__model="../../x.gguf")
    code = (
        "import sys\nfrom edge_et.cli.main import main\nsys.argv=['edge-et','info',sys.argv[1]]\n"
        "try:\n    main()\nexcept SystemExit as e:\n"
        "    print('llama_cpp' in sys.modules, e.code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(folder)], capture_output=True, text=True, cwd=ROOT
    )
    assert done.stdout.split() == ["False", "2"]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "escapes the bundle folder" in lines[0]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "name, reason", [("x" * 10_000, "too long"), ("a\0b.gguf", "NUL character")]
)
def test_a_model_path_the_system_refuses_is_one_short_line(tmp_path, name, reason):
    folder = make_bundle(tmp_path / "b", reasoning__model=name)
    with pytest.raises(BundleError) as caught:
        Bundle.load(folder)
    message = str(caught.value)
    assert "reasoning model path" in message and reason in message and len(message) < 300


def test_a_bundle_path_the_system_refuses_is_one_short_line(tmp_path):
    with pytest.raises(BundleError, match="bundle '.*too long") as caught:
        Bundle.load(tmp_path / ("x" * 10_000))
    assert len(str(caught.value)) < 300


def test_cli_reports_a_10000_character_model_name_in_one_line(tmp_path):
    folder = make_bundle(tmp_path / "b", reasoning__model="x" * 10_000)
    done = subprocess.run(
        [sys.executable, "-m", "edge_et.cli.main", "info", str(folder)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and "too long" in done.stderr
