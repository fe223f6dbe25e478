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


def test_the_page_streams_extraction_reasoning_answer_and_timings(browser, served, sample_image):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(served.url + "/")
    browser.find_element(By.ID, "key").send_keys(served.key)
    browser.find_element(By.ID, "image").send_keys(str(sample_image))
    browser.find_element(By.ID, "go").click()
    wait = WebDriverWait(browser, 60)
    wait.until(lambda page: page.find_element(By.ID, "status").text.startswith(("done", "error")))
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "serve-page.png"))
    assert browser.find_element(By.ID, "status").text.startswith("done"), \
        browser.find_element(By.ID, "status").text
    assert browser.find_element(By.ID, "model").text == "tiny-test"
    assert browser.find_element(By.ID, "reasoning").text.strip()
    assert browser.find_element(By.ID, "answer").text.startswith("Answer:")
    stages = [row.get_attribute("data-stage")
              for row in browser.find_elements(By.CSS_SELECTOR, "#timings tbody tr")]
    assert "think" in stages and ("extract" in stages), stages
    assert (ARTIFACTS / "serve-page.png").stat().st_size > 10_000
