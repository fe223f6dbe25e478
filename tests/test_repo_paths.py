"""Every repository path named in code, docs and comments exists (or is an output that
.gitignore names): a file that moved must take its mentions along.

It caught `benchmarks/replication.py` hashing `edge_et/eval_data.py` after that file had moved
to `edge_et/eval/data.py` (`--dataset easy-vqa` raised FileNotFoundError), and comments and
docstrings naming old test paths.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP = ("edge_et", "export", "tests", "benchmarks", "docs", "models", ".ci")
SCANNED = {".py", ".md", ".toml", ".sh", ".cfg", ".txt", ".js", ".html", ".css"}
# Files of other projects that the code names on purpose, each with where it lives.
ELSEWHERE = {
    "convert_hf_to_gguf.py": "llama.cpp's converter, in the llama-cpp-python sdist",
    "vendor/llama.cpp/convert_hf_to_gguf.py": "the same, by its path in the sdist",
    "models/templates": "chat templates in the llama-cpp-python sdist's llama.cpp",
    "stage_1_utils.py": "the paper's lmms-eval files (github.com/markendo/downscaling_intelligence)",
    "qwen3.py": "the same",
    "lmms_eval_custom_files/qwen3.py": "the same, by its path",
    "visual_extraction_tuning_pipeline.py": "the paper's repository",
    "build.sh": "ONNX Runtime's build script",
    "lmms_eval/tasks/mmstar/utils.py": "lmms-eval's MMStar scorer (github.com/EvolvingLMMs-Lab/lmms-eval)",
}
# `edge_et/planted_x.py`: files the import-contract tests write, run and delete.
PLANTED = re.compile(r"/planted_\w+\.py$")

# Not after `$`: `$OUT/bench/x.md` is outside the repository.
TOPS = "|".join(re.escape(top) for top in TOP)
REPO_PATH = re.compile(rf"(?<![\w./$-])((?:{TOPS})/[\w./-]*\w)")
FILE_NAME = re.compile(r"(?<![\w./$-])(\w[\w./-]*\.(?:py|md|toml|sh))\b")
# ROOT / "edge_et" / "eval_data.py": a path built in code, one quoted part at a time.
JOINED = re.compile(r"""((?:["'][\w.-]+["']\s*/\s*)+["'][\w.-]+["'])""")


@cache
def tracked() -> tuple[str, ...]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return tuple(path for path in listed.splitlines() if (ROOT / path).exists())


def ignored(path: str) -> bool:
    """An output a command writes (models/store/..., models/bundles/...): .gitignore names it."""
    for candidate in (path, path + "/"):  # `models/store/` in .gitignore matches folders only
        if (
            subprocess.run(
                ["git", "check-ignore", "--no-index", "-q", candidate], cwd=ROOT
            ).returncode
            == 0
        ):
            return True
    return False


def scanned_files() -> list[str]:
    return [
        path
        for path in tracked()
        if (Path(path).suffix in SCANNED or Path(path).name == "Makefile")
        and not path.startswith(("benchmarks/results/", "tests/fuzz/corpus/"))
        and path != "tests/test_repo_paths.py"
    ]  # it names moved files on purpose


def mentions(text: str, python: bool) -> list[tuple[int, str]]:
    """(line, path) for every path-like mention in `text`."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for match in REPO_PATH.finditer(line):
            if not pattern_follows(line, match.end()):
                found.append((number, match.group(1).rstrip(".")))
        for match in FILE_NAME.finditer(line):
            name = match.group(1)
            if pattern_follows(line, match.end()):
                continue
            quoted = python and line[max(0, match.start() - 1) : match.start()] in ("'", '"')
            if not name.startswith(TOP) and not ("/" not in name and quoted):
                found.append((number, name))  # a quoted bare name in code: a test's own file
        if python:
            for match in JOINED.finditer(line):
                parts = re.findall(r"""["']([\w.-]+)["']""", match.group(1))
                if parts[0] in TOP:
                    found.append((number, "/".join(parts)))
    return found


def pattern_follows(line: str, end: int) -> bool:
    """`bench_*.json`, `answer_cue-<reasoner>.md`, `mobile.{json,md}`: a pattern, not a path."""
    return any(c in line[end : end + 2] for c in "*<{[")


def exists(path: str) -> bool:
    if path in ELSEWHERE or PLANTED.search(path) or any(c in path for c in "*{}<>"):
        return True
    if path.startswith(TOP):
        return (ROOT / path).exists() or ignored(path)
    if "/" in path:  # relative to some package: backends/llama_cpp/model.py
        return any(f == path or f.endswith("/" + path) for f in tracked())
    return any(Path(f).name == path for f in tracked())


def test_every_named_repository_path_exists():
    missing = [
        f"{source}:{line}: {path}"
        for source in scanned_files()
        for line, path in mentions(
            (ROOT / source).read_text(errors="replace"), source.endswith(".py")
        )
        if not exists(path)
    ]
    assert not missing, "paths that do not exist:\n" + "\n".join(missing)


@pytest.mark.parametrize(
    "text, named",
    [
        ('sources = [ROOT / "edge_et" / "eval_data.py"]', "edge_et/eval_data.py"),
        ("# as in llama_cpp_model.py", "llama_cpp_model.py"),
        ("see tests/test_tiled_images.py", "tests/test_tiled_images.py"),
    ],
)
def test_a_moved_file_is_caught(text, named):
    assert (1, named) in mentions(text, python=True) and not exists(named)
