"""The reference web app (web/) on the tiny bundle's `export mobile --web` package, in a real
headless Chromium (Debian's chromium + chromium-driver) through selenium, served on 127.0.0.1 by
the app's own web/serve.mjs: the page's extraction and answer are the Python runtime's on the same
package, token for token (greedy), and a bad package is one line in the page.

The app's npm dependencies come from web/package-lock.json (`npm ci`, kept in web/node_modules;
`make web` does the same)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("optimum.exporters.onnx")
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
QUESTION = "What color is the circle?\nA. blue\nB. green\nC. red\nD. yellow"
# A random tiny model repeats itself greedily; the penalty makes the tokens varied, so that
# equal sequences say something. Both runtimes read these from the package.
_STEP = {"temperature": 0.0, "repeat_penalty": 4.0}
GREEDY = {
    "extract": {**_STEP, "max_tokens": 24},
    "think": {**_STEP, "budget": 16, "answer_budget": 8},
    "reason": {**_STEP, "max_tokens": 16, "answer_budget": 8},
}


def npm_ci() -> None:
    """web/node_modules from the lock file, once (`npm ci` again when the lock file changed)."""
    stamp = WEB / "node_modules" / ".package-lock.json"
    if stamp.is_file() and stamp.stat().st_mtime >= (WEB / "package-lock.json").stat().st_mtime:
        return
    if not shutil.which("npm"):
        pytest.skip("npm is not installed: the web app's dependencies cannot be installed")
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund"], cwd=WEB, check=True, capture_output=True
    )


@pytest.fixture(scope="module")
def packages(tmp_path_factory) -> Path:
    """good/ (the tiny bundle with greedy decoding, exported --web), instruct/ (the same graphs
    with the reasoner marked as not thinking: the answer cue instead of budget forcing) and three
    bad copies."""
    from export.mobile.package import export_mobile
    from export.tiny.onnx import tiny_onnx

    root = tmp_path_factory.mktemp("web-packages")
    source = root / "source"
    shutil.copytree(
        tiny_onnx(
            perception="llava-ov-qwen3", reasoning="qwen3", quant="fp32", validate=False
        ).bundle,
        source,
    )
    manifest = json.loads((source / "bundle.json").read_text())
    manifest["decoding"] = GREEDY
    (source / "bundle.json").write_text(json.dumps(manifest))
    export_mobile(out=root / "good", bundle=source, quant="int4", web=True)
    for other in ("instruct", "missing", "damaged", "newer"):
        shutil.copytree(root / "good", root / other)
    for name, key in (("bundle.json", None), ("mobile.json", "stages")):
        data = json.loads((root / "instruct" / name).read_text())
        (data[key] if key else data)["reasoning"]["thinking"] = False
        (root / "instruct" / name).write_text(json.dumps(data))
    (root / "missing" / "reasoning" / "decoder.ort").unlink()
    embed = root / "damaged" / "perception" / "embed.ort"
    data = bytearray(embed.read_bytes())
    data[len(data) // 2] ^= 0xFF
    embed.write_bytes(bytes(data))
    newer = json.loads((root / "newer" / "mobile.json").read_text())
    newer["format"] = "edge-et.mobile/3"
    (root / "newer" / "mobile.json").write_text(json.dumps(newer))
    return root


@pytest.fixture(scope="module")
def served(packages):
    if not shutil.which("node"):
        pytest.skip("Node.js is not installed: the web app cannot be served")
    npm_ci()
    server = subprocess.Popen(
        ["node", str(WEB / "serve.mjs"), "--package", str(packages), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = server.stdout.readline().strip().split("?")[0]
        assert url.startswith("http://127.0.0.1:"), url
        yield url
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (CHROMIUM and DRIVER):
        pytest.skip(
            "chromium and chromium-driver are not installed (make test installs them with apt-get)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1100,1400",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def _open(browser, served: str, package: str):
    """The page with `package` loaded; (status text, error text) once loading ended."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{served}?package=/package/{package}/")
    WebDriverWait(browser, 120).until(
        lambda page: page.find_element(By.ID, "status").text in ("package loaded", "error")
    )
    return browser.find_element(By.ID, "status").text, browser.find_element(By.ID, "error").text


def python_run(package: Path, image: Path) -> dict:
    """The Python runtime on the same package: texts and every token kept, per stage."""
    from edge_et.bundle.manifest import Bundle
    from edge_et.runtime.pipeline import Pipeline, RunOptions

    tokens = {"extract": [], "think": []}
    with Pipeline(Bundle.load(package)) as pipeline:
        pipeline.load()
        _record(pipeline.model("perception"), tokens["extract"])
        _record(pipeline.model("reasoning"), tokens["think"])
        result = pipeline.run(image, QUESTION, RunOptions(seed=0))
    return {
        "extraction": result.extraction,
        "reasoning": result.reasoning,
        "answer": result.answer,
        "hint": result.hint,
        "tokens": tokens,
    }


def _record(model, into: list[int]) -> None:
    """Every token the generation keeps goes through `append`: note it on the way."""
    keep = model.append

    def append(*, tokens: list[int]) -> None:
        into.extend(tokens)
        keep(tokens=tokens)

    model.append = append


@pytest.mark.parametrize("package", ["good", "instruct"])
def test_the_page_answers_as_the_python_runtime_token_for_token(
    browser, served, packages, sample_image, package
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    status, error = _open(browser, served, package)
    assert (status, error) == ("package loaded", ""), error
    question = browser.find_element(By.ID, "question")
    question.clear()
    question.send_keys(QUESTION)
    browser.find_element(By.ID, "image").send_keys(str(sample_image))
    browser.find_element(By.ID, "go").click()
    WebDriverWait(browser, 120).until(
        lambda page: page.execute_script(
            "return window.edgeEt.result !== null || window.edgeEt.error !== null"
        )
    )
    page = browser.execute_script("return window.edgeEt")
    assert page["error"] is None, page["error"]
    shown = page["result"]
    expected = python_run(packages / package, sample_image)
    assert shown["tokens"]["extract"] == expected["tokens"]["extract"]
    assert shown["tokens"]["think"] == expected["tokens"]["think"]
    assert len(expected["tokens"]["extract"]) == 24 and len(expected["tokens"]["think"]) > 16
    if package == "instruct":  # the random reasoner names no answer: the cue was forced
        assert "\nAnswer:" in expected["reasoning"] and shown["stages"]["think"]["answer_cued"]
    else:
        assert shown["stages"]["think"]["think_forced"]
    for key in ("hint", "extraction", "reasoning", "answer"):
        assert shown[key] == expected[key], key
    # and the page shows them: the streamed text, the answer, a timing row per stage
    assert browser.find_element(By.ID, "extraction").text == expected["extraction"].strip()
    assert browser.find_element(By.ID, "answer").text == f"Answer: {expected['answer']}".strip()
    stages = [
        row.get_attribute("data-stage")
        for row in browser.find_elements(By.CSS_SELECTOR, "#timings tbody tr")
    ]
    assert stages == ["extract", "think"]


@pytest.mark.parametrize(
    "package, message",
    [
        ("missing", "reasoning/decoder.ort is missing from the package (HTTP 404"),
        ("damaged", "perception/embed.ort has sha256 "),
        (
            "newer",
            "mobile.json is format edge-et.mobile/3, newer than this page reads (edge-et.mobile/2)",
        ),
    ],
)
def test_a_bad_package_is_one_line_in_the_page(browser, served, package, message):
    status, error = _open(browser, served, package)
    assert status == "error" and message in error and "\n" not in error, error
