"""`edge-et bundle create`, `--bundle NAME`, `list` and `rm`, as a user types them: real processes, a
real HTTP hub on 127.0.0.1 (tests/bundle/test_pull.py's), tiny real GGUFs and a tiny real checkpoint
converted by the real export toolchain, and real llama.cpp answering at the end."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

import edge_et
from edge_et.bundle.compose import create_bundle
from edge_et.bundle.home import local_bundles, resolve_bundle
from edge_et.bundle.manifest import Bundle, sha256_file
from edge_et.errors import BundleError, EdgeEtError, InputError
from tests.helpers.ggufs import text_gguf

ROOT = Path(__file__).resolve().parents[2]
QUESTION = "How many circles are there?\nA. 1\nB. 2\nC. 3\nD. 4"


def edge_et_cli(*args: str, cwd: Path, env: dict, limit_file_bytes: int | None = None):
    def limit():  # a file-size limit: every write past it fails (EFBIG), like a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_bytes, limit_file_bytes))

    return subprocess.run(
        [sys.executable, "-m", "edge_et.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        preexec_fn=limit if limit_file_bytes else None,
    )


def one_error_line(done) -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


def tiny_files(tiny_bundle: Path) -> dict[str, Path]:
    manifest = json.loads((tiny_bundle / "bundle.json").read_text())
    return {
        "vlm": tiny_bundle / manifest["perception"]["model"],
        "mmproj": tiny_bundle / manifest["perception"]["mmproj"],
        "llm": tiny_bundle / manifest["reasoning"]["model"],
    }


def tiny_checkpoint() -> Path:
    """The tiny Qwen3 checkpoint the tiny bundle's reasoner was converted from (cached)."""
    from export.tiny.bundle import TINY_RECIPE, tiny_ggufs

    spec = TINY_RECIPE["reasoning"]
    return tiny_ggufs(spec["arch"], seed=spec["seed"]).hf_dir


CATALOG = """format = "edge-et.catalog/1"

[[model]]
name = "tiny-vlm"
kind = "perception"
description = "tiny random Qwen2-VL GGUF + mmproj"
architecture = "qwen2_vl"
license = "test"
format = "gguf"
quant = "F16"
recommended_quant = "F16"
source = "hub"
repo = "acme/tiny-vlm"

[[model.files]]
path = "{vlm}"
role = "model"

[[model.files]]
path = "{mmproj}"
role = "mmproj"

[[model]]
name = "tiny-llm"
kind = "reasoning"
description = "tiny random Qwen3 GGUF"
architecture = "qwen3"
license = "test"
format = "gguf"
quant = "F16"
recommended_quant = "F16"
source = "hub"
repo = "acme/tiny-llm"

[[model.files]]
path = "{llm}"
role = "model"

[[model]]
name = "tiny-llm-hf"
kind = "reasoning"
description = "tiny random Qwen3 checkpoint"
architecture = "qwen3"
license = "test"
format = "hf-safetensors"
quant = "F32"
recommended_quant = "Q8_0"
source = "hub"
repo = "acme/tiny-llm-hf"
patterns = ["*.json", "*.safetensors", "*.txt", "*.jinja"]

[[pair]]
name = "tiny-pair"
description = "tiny catalog pair: GGUF perception, checkpoint reasoner"
perception = "tiny-vlm"
reasoning = "tiny-llm-hf"
download_gb = 0.01
"""


@pytest.fixture
def world(tmp_path, hub, tiny_bundle):  # noqa: F811 - the hub fixture
    """A loopback hub serving the tiny models, a test catalog naming them, and a fresh home."""
    files = tiny_files(tiny_bundle)
    for key, repo in (
        ("vlm", "acme/tiny-vlm"),
        ("mmproj", "acme/tiny-vlm"),
        ("llm", "acme/tiny-llm"),
    ):
        hub.files[(repo, files[key].name)] = files[key].read_bytes()
    for path in tiny_checkpoint().iterdir():
        if path.is_file():
            hub.files[("acme/tiny-llm-hf", path.name)] = path.read_bytes()
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(CATALOG.format(**{k: v.name for k, v in files.items()}))
    env = {
        "EDGE_ET_CATALOG": str(catalog),
        "EDGE_ET_HUB_URL": hub.url,
        "EDGE_ET_BUNDLES": str(tmp_path / "home"),
    }
    return {
        "tmp": tmp_path,
        "hub": hub,
        "files": files,
        "catalog": catalog,
        "env": env,
        "home": tmp_path / "home",
        "store": tmp_path / "models" / "store",
    }


def downloads(hub) -> int:
    """File transfers the hub served (a GET of a file's bytes; HEAD requests not counted)."""
    return sum(1 for r in hub.log if r["kind"] == "bytes")


@pytest.mark.slow
def test_catalog_pair_pulled_converted_linked_planned_then_run_answers(world, sample_image):
    """The journey: `bundle create PAIR` pulls a GGUF VLM and a checkpoint from the hub, converts the
    checkpoint once (parity-checked), links, plans; a rerun moves nothing; `run --bundle NAME`
    answers; `list` and `rm` see the bundle and the store models."""
    tmp, env, hub = world["tmp"], world["env"], world["hub"]  # noqa: F811
    done = edge_et_cli("bundle", "create", "tiny-pair", cwd=tmp, env=env)
    assert done.returncode == 0, done.stderr
    assert "tiny-pair written" in done.stdout and "decision: co-resident" in done.stdout
    bundle = Bundle.load(world["home"] / "tiny-pair", verify_checksums=True)
    assert bundle.reasoning.thinking is True  # Qwen3's chat template knows <think>
    assert bundle.perception.arch == "qwen2vl" and bundle.reasoning.arch == "qwen3"
    assert bundle.reasoning.model_info.file_type == "Q8_0"  # the catalog's recommended_quant
    assert bundle.perception.n_ctx == min(bundle.perception.model_info.context_length, 4096)
    vlm = world["store"] / "tiny-vlm" / world["files"]["vlm"].name
    assert (bundle.path / vlm.name).samefile(vlm)  # linked, not copied
    fetched = downloads(hub)
    assert fetched >= 3

    again = edge_et_cli("bundle", "create", "tiny-pair", "--json", cwd=tmp, env=env)
    report = json.loads(again.stdout)
    assert again.returncode == 0 and report["unchanged"], again.stderr
    assert not report["downloaded"] and not report["converted"] and downloads(hub) == fetched
    assert report["plan"]["decision"] == "co-resident"

    answered = edge_et_cli(
        "run",
        "--bundle",
        "tiny-pair",
        "--image",
        str(sample_image),
        "--question",
        QUESTION,
        "--think-budget",
        "6",
        "--answer-budget",
        "4",
        "--json",
        cwd=tmp,
        env=env,
    )
    assert answered.returncode == 0, answered.stderr
    assert json.loads(answered.stdout)["mode"] == "extract-think"

    listed = json.loads(edge_et_cli("list", "--json", cwd=tmp, env=env).stdout)
    assert [(b["name"], b["fits"]) for b in listed["bundles"]] == [("tiny-pair", True)]
    assert {m["name"]: m["used_by"] for m in listed["models"]} == {
        "tiny-llm-hf": ["tiny-pair"],
        "tiny-vlm": ["tiny-pair"],
    }
    assert "used by bundle(s) tiny-pair" in one_error_line(
        edge_et_cli("rm", "tiny-vlm", cwd=tmp, env=env)
    )
    assert edge_et_cli("rm", "tiny-pair", cwd=tmp, env=env).returncode == 0
    assert edge_et_cli("rm", "tiny-vlm", cwd=tmp, env=env).returncode == 0
    assert not (world["store"] / "tiny-vlm").exists() and not (world["home"] / "tiny-pair").exists()


@pytest.mark.slow
def test_local_gguf_files_by_name_through_the_python_api(world, sample_image, monkeypatch):
    """GGUF files the user has: linked with their sha256, arch/thinking/n_ctx from the headers, and
    `open_pipeline("NAME")` finds the bundle in the home."""
    files = world["files"]
    report = create_bundle(
        "mine",
        perception=str(files["vlm"]),
        mmproj=files["mmproj"],
        reasoning=str(files["llm"]),
        home=world["home"],
        store=world["store"],
        catalog=world["catalog"],
    )
    manifest = json.loads((report.path / "bundle.json").read_text())
    assert manifest["reasoning"]["thinking"] is True and manifest["reasoning"]["n_ctx"] >= 16
    assert manifest["perception"]["sha256"][files["vlm"].name] == sha256_file(files["vlm"])
    assert (report.path / files["llm"].name).samefile(files["llm"])
    assert downloads(world["hub"]) == 0
    monkeypatch.setenv("EDGE_ET_BUNDLES", str(world["home"]))
    with edge_et.open_pipeline("mine") as pipeline:
        result = pipeline.run(
            sample_image, QUESTION, edge_et.RunOptions(think_budget=4, answer_budget=3)
        )
    assert result.mode == "extract-think"
    # A stage of that bundle builds another one; a second create of the same thing changes nothing.
    other = create_bundle(
        "reasoner-only",
        reasoning="mine:reasoning",
        home=world["home"],
        store=world["store"],
        catalog=world["catalog"],
    )
    assert [s.kind for s in other.stages] == ["bundle"]
    assert create_bundle(
        "reasoner-only",
        reasoning="mine:reasoning",
        home=world["home"],
        store=world["store"],
        catalog=world["catalog"],
    ).unchanged
    assert [b.name for b in local_bundles(world["home"])] == ["mine", "reasoner-only"]


def test_an_unbuilt_pair_names_the_command_and_downloads_nothing(world, monkeypatch):
    monkeypatch.setenv("EDGE_ET_CATALOG", str(world["catalog"]))
    monkeypatch.setenv("EDGE_ET_BUNDLES", str(world["home"]))
    with pytest.raises(
        BundleError,
        match=r"not built yet; build it with: edge-et bundle create tiny-pair "
        r"\(downloads about 0.01 GB\)",
    ):
        resolve_bundle("tiny-pair")
    done = edge_et_cli("plan", "--bundle", "tiny-pair", cwd=world["tmp"], env=world["env"])
    assert "edge-et bundle create tiny-pair" in one_error_line(done)
    assert downloads(world["hub"]) == 0 and not world["home"].exists()


FAULTS = {
    "unknown name": ({"reasoning": "no-such-model"}, "not a catalog model"),
    "wrong kind": ({"perception": "tiny-llm"}, "perception stage needs a vision-language model"),
    "text GGUF as perception": (
        {"perception": "@llm"},
        "a text GGUF cannot be the perception stage",
    ),
    "missing mmproj file": (
        {"perception": "@vlm", "mmproj": "@missing"},
        "--mmproj .*: no such file",
    ),
    "mmproj that is no projector": (
        {"perception": "@vlm", "mmproj": "@llm"},
        "not a vision projector",
    ),
    "mmproj for the reasoner": (
        {"reasoning": "@llm", "mmproj": "@mmproj"},
        "belongs to the perception",
    ),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_faults_are_one_line_nothing_written_nothing_downloaded(world, fault):
    args, message = FAULTS[fault]
    paths = {
        **{f"@{k}": str(v) for k, v in world["files"].items()},
        "@missing": str(world["tmp"] / "no.gguf"),
    }
    args = {k: paths.get(v, v) for k, v in args.items()}
    with pytest.raises(InputError, match=message):
        create_bundle(
            "x",
            perception=args.get("perception"),
            reasoning=args.get("reasoning"),
            mmproj=Path(args["mmproj"]) if "mmproj" in args else None,
            home=world["home"],
            store=world["store"],
            catalog=world["catalog"],
        )
    assert downloads(world["hub"]) == 0
    assert not (world["home"] / "x").exists() and not list(world["home"].glob("x*"))


@pytest.mark.slow
def test_unsupported_architecture_fails_in_one_line_and_the_rerun_downloads_nothing_again(world):
    """The perception model is pulled before the reasoner's conversion fails; fixing the reasoner and
    running again fetches nothing twice."""
    checkpoint = world["tmp"] / "odd"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text(json.dumps({"model_type": "nonsense-lm"}))
    done = edge_et_cli(
        "bundle",
        "create",
        "x",
        "--perception",
        "tiny-vlm",
        "--reasoning",
        str(checkpoint),
        "--json",
        cwd=world["tmp"],
        env=world["env"],
    )  # --json: no progress on stderr
    assert "'nonsense-lm' is not supported" in one_error_line(done)
    assert not (world["home"] / "x").exists() and not list((world["store"] / "converted").glob("*"))
    fetched = downloads(world["hub"])
    fixed = edge_et_cli(
        "bundle",
        "create",
        "x",
        "--perception",
        "tiny-vlm",
        "--reasoning",
        str(world["files"]["llm"]),
        "--json",
        cwd=world["tmp"],
        env=world["env"],
    )
    assert fixed.returncode == 0 and not json.loads(fixed.stdout)["downloaded"], fixed.stderr
    assert downloads(world["hub"]) == fetched


def test_read_only_bundles_home_is_one_line_before_any_download(world):
    readonly = Path("/sys/edge-et-bundles")  # /sys refuses new folders, even to root
    if sys.platform != "linux":
        pytest.skip("needs Linux's /sys")
    done = edge_et_cli(
        "bundle",
        "create",
        "x",
        "--perception",
        "tiny-vlm",
        cwd=world["tmp"],
        env={**world["env"], "EDGE_ET_BUNDLES": str(readonly)},
    )
    assert "cannot write to the bundles home /sys/edge-et-bundles" in one_error_line(done)
    assert downloads(world["hub"]) == 0 and not readonly.exists()


def test_a_full_disk_while_copying_is_one_line_and_leaves_nothing(world, tmp_path):
    """Files on another file system are copied; a write that fails (here: past a file-size limit,
    as a full disk would) leaves no bundle and no scratch folder."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs a second file system (/dev/shm)")
    big = text_gguf(world["tmp"] / "big.gguf", "qwen3")
    with open(big, "ab") as handle:
        handle.write(b"\0" * (2 << 20))  # data past the header: the copy must write it
    home = shm / f"edge-et-home-{os.getpid()}-{tmp_path.name}"
    try:
        done = edge_et_cli(
            "bundle",
            "create",
            "x",
            "--reasoning",
            str(big),
            "--json",
            cwd=world["tmp"],
            env={**world["env"], "EDGE_ET_BUNDLES": str(home)},
            limit_file_bytes=1 << 20,
        )
        assert "cannot copy big.gguf" in one_error_line(done)
        assert list(home.iterdir()) == []
    finally:
        import shutil

        shutil.rmtree(home, ignore_errors=True)


def test_catalog_pairs_name_real_models(tmp_path):
    """The shipped catalog's pairs: the paper's two and the offline one, stages of the right kind."""
    from edge_et.bundle.catalog import load_catalog
    from edge_et.bundle.pairs import download_text, find_pair, load_pairs, stage_folder

    catalog = load_catalog()
    pairs = {p.name: p for p in load_pairs(catalog)}
    assert (pairs["paper-0.6b"].perception, pairs["paper-0.6b"].reasoning) == (
        "llava-extract-qwen3-0.6b",
        "qwen3-1.7b",
    )
    assert (pairs["paper-1.7b"].perception, pairs["paper-1.7b"].reasoning) == (
        "llava-extract-qwen3-1.7b",
        "qwen3-4b",
    )
    for pair in pairs.values():
        for role in ("perception", "reasoning"):
            ref = getattr(pair, role)
            folder = stage_folder(ref, catalog)
            if folder is None:
                assert catalog.find(ref).kind == role, (pair.name, ref)
            else:
                assert Bundle.load(folder).require(role)
    assert download_text(find_pair("micro-coder-0.5b", catalog), catalog) == "491 MB"
    with pytest.raises(EdgeEtError):
        create_bundle("no/slash", reasoning="x", home=tmp_path)


def test_readme_and_docs_give_every_pair_with_its_download():
    from edge_et.bundle.catalog import load_catalog
    from edge_et.bundle.pairs import download_text, load_pairs

    catalog = load_catalog()
    for document in ("README.md", "docs/bundles.md"):
        rows = {
            line.split("|")[1].strip(" `"): line.split("|")[-2].strip()
            for line in (ROOT / document).read_text().splitlines()
            if line.startswith("| `")
        }
        for pair in load_pairs(catalog):
            assert rows.get(pair.name) == download_text(pair, catalog), (document, pair.name)


def test_a_checkpoint_without_the_export_extra_is_one_line_before_any_download(world):
    """Where torch is not installed (hidden here from the import system, as if absent), a REF that
    needs converting stops in one line naming the extra; the GGUF perception is not pulled."""
    blocker = world["tmp"] / "no-torch"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\n"
        "class NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n"
        "sys.meta_path.insert(0, NoTorch())\n"
    )
    done = edge_et_cli(
        "bundle",
        "create",
        "tiny-pair",
        "--json",
        cwd=world["tmp"],
        env={**world["env"], "PYTHONPATH": f"{blocker}{os.pathsep}{ROOT}"},
    )
    assert "needs 'torch': pip install 'edge-et[export]'" in one_error_line(done)
    assert downloads(world["hub"]) == 0 and not (world["home"] / "tiny-pair").exists()
