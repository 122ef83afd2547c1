"""The quickstart-sized report in a real browser (Debian's headless Chromium through Selenium and chromedriver):
the verdict card is visible without scrolling at 1280x800, every image loads, the console stays clean. The
screenshot of the first screen is kept under the run directory (runs/ci/report-browser/) as a CI artifact."""

import shutil
from pathlib import Path

import pytest

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
ROOT = Path(__file__).resolve().parent.parent


def _driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,800", "--hide-scrollbars"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=opts, service=Service(DRIVER))  # the Debian driver: no download, same version


@pytest.mark.integration
@pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="Debian's chromium and chromium-driver are not installed "
                                                       "(apt-get install chromium chromium-driver; .ci/run does)")
def test_report_opens_with_the_verdict_card_and_no_broken_image_or_console_error():
    from selenium.webdriver.common.by import By

    from ftaudit.pipeline import QuickstartConfig, quickstart

    out = ROOT / "runs" / "ci" / "report-browser"
    quickstart(out, QuickstartConfig.smoke())
    html = (out / "report.html").read_text()
    assert "src=\"data:image/png;base64," in html and 'src="refusal.png"' not in html  # self-contained
    driver = _driver()
    try:
        driver.set_window_size(1280, 800)
        driver.get((out / "report.html").as_uri())
        inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
        card = driver.find_element(By.ID, "verdict")
        box = card.rect
        driver.save_screenshot(str(out / "report-first-screen.png"))
        assert card.is_displayed() and box["y"] >= 0 and box["y"] + box["height"] <= inner[1], (box, inner)
        assert "Cheapest attack that broke safety" in card.text
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.alt, i.complete && i.naturalWidth > 0])")
        assert len(images) >= 2 and all(ok for _, ok in images), images
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
    finally:
        driver.quit()
    assert (out / "report-first-screen.png").stat().st_size > 10_000
