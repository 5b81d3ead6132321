"""Drive the app in a real headless browser (Debian's chromium and chromium-driver, through selenium): nothing is
downloaded at run time. Used by test_browser.py, and to take the README's screenshot of a running app:

    soundstage app &                                      # or any app URL
    python -m tests.app.browser --url http://127.0.0.1:7860/ --out benchmarks/results/app/app_after_generation.png
"""

from __future__ import annotations

import argparse
import io
import shutil
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import soundfile as sf

from soundstage.app.render import PICKER_SIZE, direction_to_pixel

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver", "chromium-driver")


def missing_browser() -> str | None:
    """Why no browser test can run here (selenium, a chromium or its driver is missing), or None."""
    try:
        import selenium  # noqa: F401 -- only whether it is installed
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    if not any(shutil.which(b) for b in BROWSERS) or not any(shutil.which(d) for d in DRIVERS):
        return "no chromium and chromium-driver on PATH (apt-get install chromium chromium-driver)"
    return None


def start_browser(width: int = 1500, height: int = 1750) -> Any:
    """A headless chromium (selenium WebDriver) of the given window size, from the system's binaries."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = next(shutil.which(b) for b in BROWSERS if shutil.which(b))
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={width},{height}", "--hide-scrollbars"):
        options.add_argument(argument)
    driver = next(shutil.which(d) for d in DRIVERS if shutil.which(d))
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


@dataclass
class BrowserRun:
    """What a generation in the browser showed: the slider values after the click, the status text and the files
    behind the binaural player, the stereo player and the download (bytes fetched from the app)."""

    azimuth: str
    elevation: str
    status: str
    files: dict[str, bytes]

    def audio(self, name: str) -> sf.SoundFile:
        return sf.SoundFile(io.BytesIO(self.files[name]))


def generate_in_browser(driver: Any, url: str, prompt: str, direction: tuple[float, float],
                        timeout: float = 300.0) -> BrowserRun:
    """Open the app, type ``prompt``, click ``direction`` (azimuth, elevation) on the top view, press Generate and
    wait for the players and the download; raises TimeoutException if they do not come."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, timeout)
    driver.get(url)
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#prompt textarea"))).send_keys(prompt)
    picture = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "#picker img")))
    x, y = direction_to_pixel(*direction)
    scale = picture.size["width"] / PICKER_SIZE  # the picture is drawn scaled to its column
    ActionChains(driver).scroll_to_element(picture).move_to_element_with_offset(
        picture, round((x - PICKER_SIZE / 2) * scale), round((y - PICKER_SIZE / 2) * scale)).click().perform()

    def number(elem_id: str) -> str:
        return driver.find_element(By.CSS_SELECTOR, f"#{elem_id} input[type=number]").get_attribute("value")

    wait.until(lambda _: number("azimuth") == f"{direction[0]:g}")
    driver.find_element(By.CSS_SELECTOR, "#generate").click()
    wait.until(lambda d: all(d.find_elements(By.CSS_SELECTOR, css) for css in OUTPUT_LINKS.values()))
    wait.until(lambda d: "seed" in d.find_element(By.CSS_SELECTOR, "#status").text)
    return _outputs(driver, number("azimuth"), number("elevation"))


def rotate_in_browser(driver: Any, yaw: float, timeout: float = 120.0) -> BrowserRun:
    """Type ``yaw`` degrees into the rotation's yaw box and wait for the rotated clip to be shown."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    before = {name: _href(driver, css) for name, css in OUTPUT_LINKS.items()}
    box = driver.find_element(By.CSS_SELECTOR, "#yaw input[type=number]")
    box.clear()
    box.send_keys(f"{yaw:g}", Keys.TAB)
    WebDriverWait(driver, timeout).until(
        lambda d: f"rotated by yaw/pitch/roll {yaw:g}/0/0" in d.find_element(By.CSS_SELECTOR, "#status").text)
    return _outputs(driver, "", "", before)


OUTPUT_LINKS = {name: f"#{name} a[data-testid=download-link]" for name in ("binaural", "stereo", "download")}


def _href(driver: Any, css: str) -> str | None:
    """The link's target, or None while Gradio is re-rendering it (the element found may be replaced meanwhile)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        return driver.find_element(By.CSS_SELECTOR, css).get_attribute("href")
    except (NoSuchElementException, StaleElementReferenceException):
        return None


def _outputs(driver: Any, azimuth: str, elevation: str, before: dict[str, str | None] | None = None,
             timeout: float = 60.0) -> BrowserRun:
    """Download the outputs once each link is shown and (after a rotation) points at a new file, not ``before``'s."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    files = {}
    for name, css in OUTPUT_LINKS.items():
        old = (before or {}).get(name)
        href = WebDriverWait(driver, timeout).until(lambda d, css=css, old=old: (h := _href(d, css)) and h != old and h)
        with urllib.request.urlopen(href, timeout=60) as response:  # the app's own loopback URL
            files[name] = response.read()
    return BrowserRun(azimuth, elevation, driver.find_element(By.CSS_SELECTOR, "#status").text, files)


def screenshot(driver: Any, path: Path) -> Path:
    """Save the page, scrolled to the top, once its pictures have loaded."""
    driver.execute_script("window.scrollTo(0, 0)")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not driver.execute_script(
            "return Array.from(document.images).every(i => i.complete)"):
        time.sleep(0.2)
    time.sleep(1.0)  # the waveforms draw after their audio decodes
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description="Generate once in the app in a headless browser; save a screenshot")
    parser.add_argument("--url", default="http://127.0.0.1:7860/")
    parser.add_argument("--prompt", default="a car honks its horn")
    parser.add_argument("--azimuth", type=float, default=90.0)
    parser.add_argument("--elevation", type=float, default=0.0)
    parser.add_argument("--out", type=Path, default=Path("runs/app_after_generation.png"))
    args = parser.parse_args()
    driver = start_browser()
    try:
        run = generate_in_browser(driver, args.url, args.prompt, (args.azimuth, args.elevation))
        print(run.status)
        print(f"wrote {screenshot(driver, args.out)}")
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
