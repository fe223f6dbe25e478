"""The try-it page at / in a real headless Chromium (Debian's chromium + chromium-driver, which
`make test` installs): pick the sample image, ask, watch extraction, reasoning, answer and the
per-stage timings arrive. The screenshot is kept under test-artifacts/ (ignored by git)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser():
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
        "--disable-dev-shm-usage",
        "--window-size=1100,1400",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


# A random tiny model's 6-token thought can decode to nothing (byte pieces that never complete
# a character: 1 seed in 60 did); a 40-token budget and a fixed seed make the run repeatable.
SEED, BUDGET = 5, 40


def test_the_page_streams_extraction_reasoning_answer_and_timings(browser, served, sample_image):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(served.url + "/")
    browser.find_element(By.ID, "key").send_keys(served.key)
    browser.find_element(By.ID, "image").send_keys(str(sample_image))
    browser.find_element(By.ID, "budget").send_keys(str(BUDGET))
    browser.find_element(By.ID, "seed").send_keys(str(SEED))
    browser.find_element(By.ID, "go").click()
    wait = WebDriverWait(browser, 60)
    wait.until(lambda page: page.find_element(By.ID, "status").text.startswith(("done", "error")))
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "serve-page.png"))
    status = browser.find_element(By.ID, "status").text
    assert status.startswith("done") and status.endswith(f"seed {SEED}"), status
    assert browser.find_element(By.ID, "model").text == "tiny-test"
    shown = browser.find_element(By.ID, "reasoning").text
    assert shown.strip()
    assert browser.find_element(By.ID, "answer").text.startswith("Answer:")
    stages = [
        row.get_attribute("data-stage")
        for row in browser.find_elements(By.CSS_SELECTOR, "#timings tbody tr")
    ]
    assert "think" in stages and ("extract" in stages), stages
    assert (ARTIFACTS / "serve-page.png").stat().st_size > 10_000
    assert shown.strip() == _same_request_by_api(browser, served, sample_image)


def _same_request_by_api(browser, served, sample_image) -> str:
    """The thought the API gives for the page's request: what the page showed must be it."""
    import openai
    from selenium.webdriver.common.by import By

    from tests.serve.test_openai_client import data_uri, messages

    question = browser.find_element(By.ID, "question").get_attribute("value")
    client = openai.OpenAI(base_url=served.url + "/v1", api_key=served.key)
    reply = client.chat.completions.create(
        model="tiny-test",
        messages=messages(data_uri(sample_image), question),
        seed=SEED,
        extra_body={"edge_et": {"mode": "extract-think", "think_budget": BUDGET}},
    )
    return reply.choices[0].message.model_extra["reasoning_content"]


def _drop_picture(browser, path: Path) -> None:
    """Drop the picture file on the page's drop zone, as a user dragging it from a folder."""
    import base64

    browser.execute_script(
        """
        const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], "dropped.png", { type: "image/png" }));
        const zone = document.getElementById("drop");
        zone.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
    """,
        base64.b64encode(path.read_bytes()).decode(),
    )


def _ask(browser, question: str, wait_s: float = 60) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    box = browser.find_element(By.ID, "question")
    box.clear()
    box.send_keys(question)
    turns = len(browser.find_elements(By.CSS_SELECTOR, "#conversation li"))
    browser.find_element(By.ID, "go").click()
    WebDriverWait(browser, wait_s).until(
        lambda page: (
            page.find_element(By.ID, "status").text.startswith("error")
            or len(page.find_elements(By.CSS_SELECTOR, "#conversation li")) > turns
        )
    )
    return browser.find_element(By.ID, "status").text


def test_the_page_holds_a_conversation_about_a_dropped_picture_and_a_json_reply(
    browser, served, sample_image
):
    import json

    from selenium.webdriver.common.by import By

    browser.get(served.url + "/")
    browser.find_element(By.ID, "key").send_keys(served.key)
    browser.find_element(By.ID, "seed").send_keys(str(SEED))
    _drop_picture(browser, sample_image)
    assert browser.find_element(By.ID, "preview").get_attribute("src").startswith("data:image/png")
    assert _ask(browser, "What color is the circle?").startswith("done")
    # a follow-up without a picture: about the same one, whose embeddings are cached
    assert _ask(browser, "And where is it?").startswith("done")
    stages = {
        row.get_attribute("data-stage"): row.text
        for row in browser.find_elements(By.CSS_SELECTOR, "#timings tbody tr")
    }
    assert "cached" in stages["extract"], stages
    browser.find_element(By.CSS_SELECTOR, "#schema-box summary").click()
    browser.find_element(By.ID, "schema").send_keys(
        json.dumps(
            {
                "type": "object",
                "properties": {"color": {"enum": ["red", "green", "blue"]}},
                "required": ["color"],
                "additionalProperties": False,
            }
        )
    )
    browser.find_element(By.ID, "budget").send_keys("0")  # think budget 0: the reply comes at once
    browser.find_element(By.ID, "max_tokens").send_keys("200")  # room to close the JSON
    assert _ask(browser, "Reply with the color.").startswith("done")
    reply = json.loads(browser.find_element(By.ID, "content").text)
    assert reply["color"] in ("red", "green", "blue")
    turns = browser.find_elements(By.CSS_SELECTOR, "#conversation li")
    assert len(turns) == 3 and "And where is it?" in turns[1].text
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "serve-page-conversation.png"))
    browser.find_element(By.ID, "new").click()
    assert not browser.find_elements(By.CSS_SELECTOR, "#conversation li")


def test_an_instruct_reasoners_steps_show_as_reasoning_and_its_last_line_as_the_answer(
    browser, served_bundle, sample_image, tmp_path
):
    import json

    from selenium.webdriver.common.by import By

    from tests.serve.conftest import start_server

    manifest = json.loads((served_bundle / "bundle.json").read_text())
    manifest["reasoning"]["thinking"] = False  # the tiny Qwen3 as an instruct model
    manifest["decoding"]["reason"] = {"max_tokens": 24, "answer_budget": 3}
    instruct = tmp_path / "instruct"
    shutil.copytree(served_bundle, instruct)
    (instruct / "bundle.json").write_text(json.dumps(manifest))
    with start_server(instruct, tmp_path, key=None) as server:
        browser.get(server.url + "/")
        browser.find_element(By.ID, "image").send_keys(str(sample_image))
        browser.find_element(By.ID, "seed").send_keys(str(SEED))
        assert _ask(browser, "What color is the circle?").startswith("done")
        steps = browser.find_element(By.ID, "reasoning").text
        answer = browser.find_element(By.ID, "content").text
        reply = _whole_reply(server, sample_image)

    def same(text: str) -> str:  # the browser's text of a <pre> may differ in whitespace
        return " ".join(text.split())

    lines = reply.strip().split("\n")
    # the answer cue ends every reply without an answer line: its last line is `Answer: ...`
    assert lines[-1].startswith("Answer:") and len(lines) > 1, reply
    assert same(answer) == same(lines[-1]) and "\n" not in answer.strip()
    assert same(steps) == same("\n".join(lines[:-1])) and "Answer:" not in steps


def _whole_reply(server, sample_image) -> str:
    import openai

    from tests.serve.test_openai_client import data_uri, messages

    client = openai.OpenAI(base_url=server.url + "/v1", api_key="none")
    return (
        client.chat.completions.create(
            model="instruct",
            messages=messages(data_uri(sample_image), "What color is the circle?"),
            seed=SEED,
        )
        .choices[0]
        .message.content
    )
