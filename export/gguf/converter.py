"""The llama.cpp HF -> GGUF converter, pinned to the installed llama-cpp-python.

The converter is not on PyPI as a module: it ships inside the llama-cpp-python sdist, together
with its own `gguf-py` (PyPI's `gguf` is older and fails on it). We fetch the sdist of exactly the
installed version once, extract only the converter into the cache, and run it in a subprocess so
that torch and the converter's module state never touch the calling process.

Every subprocess that needs the sdist's gguf-py (the converter, our LLaVA-OneVision mmproj
writer) goes through `run_with_gguf_py`, which starts the internal entry export/gguf/runner.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from edge_et.core.cache import cache_root
from edge_et.errors import ExportError, MissingExtra

# What the converter needs from the sdist (paths below `vendor/llama.cpp/`). `models/templates`
# holds a few chat templates that some architectures read at conversion time.
_WANTED = ("convert_hf_to_gguf.py", "LICENSE", "conversion/", "gguf-py/", "models/templates/")
_VENDOR = "vendor/llama.cpp/"
_PROJECT_ROOT = Path(__file__).resolve().parents[2]
RUNNER_MODULE = "export.gguf.runner"


def llama_cpp_version() -> str:
    """Return the installed llama-cpp-python version (the converter must match it)."""
    try:
        import llama_cpp
    except ImportError as exc:
        raise MissingExtra(
            "llama-cpp-python is not installed: pip install 'edge-et[llama]'", extra="llama"
        ) from exc
    return llama_cpp.__version__


def sdist_path(version: str) -> Path:
    """Where the llama-cpp-python sdist of `version` lives in the cache."""
    return cache_root() / "sdist" / f"llama_cpp_python-{version}.tar.gz"


def fetch_sdist(version: str) -> Path:
    """Download the llama-cpp-python sdist of `version` into the cache unless it is there."""
    target = sdist_path(version)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--retries",
        "1",
        f"llama-cpp-python=={version}",
        "-d",
        str(target.parent),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not target.is_file():
        raise ExportError(
            f"cannot fetch the llama.cpp converter: run `{' '.join(cmd[2:])}` on a machine with "
            f"PyPI access and put llama_cpp_python-{version}.tar.gz into {target.parent}"
        )
    return target


def converter_dir(version: str | None = None) -> Path:
    """Return a directory holding `convert_hf_to_gguf.py`, `conversion/` and `gguf-py/`.

    Extracted once per llama-cpp-python version into `<cache>/converter/<version>/`; the
    sdist is downloaded first when the cache lacks it.
    """
    version = version or llama_cpp_version()
    target = cache_root() / "converter" / version
    if (target / "convert_hf_to_gguf.py").is_file():
        return target
    sdist = fetch_sdist(version)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Extract beside the target and rename, so an interrupted run never leaves half a converter.
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{version}-"))
    tmp.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
    try:
        _extract_converter(sdist, tmp)
        tmp.rename(target)
    except OSError:
        if not (target / "convert_hf_to_gguf.py").is_file():  # else a concurrent run won
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _extract_converter(sdist: Path, dest: Path) -> None:
    with tarfile.open(sdist) as tar:
        members = []
        for member in tar.getmembers():
            _, _, inner = member.name.partition("/")  # drop `llama_cpp_python-<ver>/`
            if not inner.startswith(_VENDOR) or not (member.isfile() or member.isdir()):
                continue
            rel = inner[len(_VENDOR) :]
            if not rel.startswith(_WANTED) or "/tests/" in rel or "__pycache__" in rel:
                continue
            member.name = rel
            members.append(member)
        if not any(m.name == "convert_hf_to_gguf.py" for m in members):
            raise ExportError(f"{sdist} holds no vendor/llama.cpp/convert_hf_to_gguf.py; delete it")
        tar.extractall(dest, members=members, filter="data")


def run_with_gguf_py(command: list[str]) -> subprocess.CompletedProcess:
    """Run `python -m export.gguf.runner <command>` with the converter's own gguf-py (and its
    `conversion` package) ahead of PyPI's gguf on sys.path; its output is captured."""
    conv = converter_dir()
    env = dict(os.environ)
    paths = [str(conv / "gguf-py"), str(conv), str(_PROJECT_ROOT)]
    env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in [env.get("PYTHONPATH")] if p])
    cmd = [sys.executable, "-m", RUNNER_MODULE, *command]
    # cwd = the converter: `-m` puts cwd first on sys.path, and no stray `export` or `gguf`
    # package in the caller's working directory may shadow ours (hence absolute paths).
    return subprocess.run(cmd, env=env, cwd=conv, capture_output=True, text=True)


def run_converter(args: list[str], *, pre_fallback: str | None = None) -> None:
    """Run `convert_hf_to_gguf.py <args>` in a subprocess of the current interpreter.

    `pre_fallback` names a llama.cpp pre-tokenizer (e.g. "qwen2") to record when the
    tokenizer's pre-tokenizer hash is unknown to the converter, as it is for tokenizers
    trained locally. Raises ExportError (one line: the converter's own error) on failure.
    """
    command = ["convert", "--converter-dir", str(converter_dir())]
    if pre_fallback:
        command += ["--pre-fallback", pre_fallback]
    proc = run_with_gguf_py(command + ["--", *args])
    if proc.returncode != 0:
        # The checkpoint was checked before (export/checkpoint.py); what the converter still
        # refuses (a tensor it lacks, a shape that disagrees with config.json) is said in its
        # own last words, as one line, not as its traceback.
        raise ExportError(
            f"llama.cpp's converter could not convert {Path(args[0]).name}: "
            f"{failure_line(proc.stdout + proc.stderr)}"
        )


def failure_line(output: str) -> str:
    """The line of a subprocess's output that says why it failed: the exception a traceback ends
    with, else its last line."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    errors = [
        i
        for i, line in enumerate(lines)
        if re.match(r"^[A-Za-z_.]*(Error|Exception|Exit)\b:?", line)
    ]
    if not errors:
        return (lines or ["no output"])[-1][:300]
    at = errors[-1]
    chosen = lines[at]
    if ":" not in chosen:  # a bare `AssertionError`: the failing source line says what was asserted
        source = [line for line in lines[:at] if not set(line) <= set("^~ ")]
        if source and not source[-1].startswith("File "):
            chosen += f" ({source[-1]})"
    return chosen[:300]


def _patch_pre_tokenizer(fallback: str) -> None:
    """Make the converter name `fallback` for pre-tokenizer hashes it does not know."""
    from conversion.base import TextModel  # the converter's, found through sys.path

    original = TextModel.get_vocab_base_pre

    def get_vocab_base_pre(self, tokenizer) -> str:
        try:
            return original(self, tokenizer)
        except NotImplementedError:  # only raised for unknown hashes
            return fallback

    TextModel.get_vocab_base_pre = get_vocab_base_pre


def convert(converter_dir: Path, args: list[str], pre_fallback: str | None = None) -> None:
    """In the gguf-py subprocess: import the converter, patch it, call its main() on `args`."""
    # `conversion.base` looks up `models/ggml-vocab-*.gguf` relative to sys.path[0].
    sys.path.insert(0, str(converter_dir))
    import convert_hf_to_gguf  # the converter's script, found through sys.path

    if pre_fallback:
        _patch_pre_tokenizer(pre_fallback)
    sys.argv = ["convert_hf_to_gguf.py", *args]
    convert_hf_to_gguf.main()
