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
        pytest.skip("chromium and chromium-driver are not installed (make test installs them with apt-get)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,1400"):
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
    stages = [row.get_attribute("data-stage")
              for row in browser.find_elements(By.CSS_SELECTOR, "#timings tbody tr")]
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
        model="tiny", messages=messages(data_uri(sample_image), question), seed=SEED,
        extra_body={"edge_et": {"mode": "extract-think", "think_budget": BUDGET}})
    return reply.choices[0].message.model_extra["reasoning_content"]
