"""End to end in headless Chromium: serve `musigen demo` on loopback with tiny random models,
generate, edit twice, check the history holds three playable versions, screenshot the page.

Needs Debian's `chromium` and `chromium-driver` (/usr/bin/chromium, /usr/bin/chromedriver)
and the 'demo' extra (gradio, selenium); skipped with the reason when one is missing.
Nothing is downloaded: Selenium is pointed at the system driver and browser.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from demo_tiny import save_tiny_models

CHROMIUM = Path("/usr/bin/chromium")
DRIVER = Path(shutil.which("chromedriver") or "/usr/bin/chromedriver")

pytest.importorskip("gradio", reason="the 'demo' extra is not installed (pip install '.[demo]')")
webdriver = pytest.importorskip("selenium.webdriver",
                                reason="selenium is not installed (pip install '.[demo]')")
if not CHROMIUM.is_file():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)",
                allow_module_level=True)
if not DRIVER.is_file():
    pytest.skip("chromedriver is not installed (apt-get install chromium-driver)",
                allow_module_level=True)

from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

#: One generation or edit with the tiny models takes seconds; the slack is for a busy CI box.
STEP_TIMEOUT = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("demo_browser")
    gen, edit = save_tiny_models(root / "models")
    port = _free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "musigen.cli", "demo", "--port", str(port), "--model-gen", str(gen),
         "--model-edit", str(edit), "--work-dir", str(root / "work")],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail("musigen demo exited early:\n" + (root / "server.log").read_text())
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("musigen demo did not serve in time:\n"
                            + (root / "server.log").read_text())
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1800", "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _type(driver: object, selector: str, text: str) -> None:
    field = driver.find_element(By.CSS_SELECTOR, selector)  # type: ignore[attr-defined]
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.DELETE)
    field.send_keys(text)


def _click(driver: object, elem_id: str) -> None:
    button = driver.find_element(By.ID, elem_id)  # type: ignore[attr-defined]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)  # type: ignore[attr-defined]
    button.click()


def _wait_text(driver: object, elem_id: str, needle: str) -> str:
    def found(d: object) -> str | bool:
        text = d.find_element(By.ID, elem_id).text  # type: ignore[attr-defined]
        return text if needle in text else False

    try:
        return WebDriverWait(driver, STEP_TIMEOUT).until(found)
    except TimeoutException:
        text = driver.find_element(By.ID, elem_id).text  # type: ignore[attr-defined]
        pytest.fail(f"#{elem_id} never showed {needle!r}; it shows {text!r}")


def _screenshot(driver: object, path: Path) -> None:
    """The whole page as a PNG in the test's folder (and in $MUSIGEN_DEMO_SCREENSHOTS if set)."""
    driver.execute_script("window.scrollTo(0, 0);")  # type: ignore[attr-defined]
    height = driver.execute_script(  # type: ignore[attr-defined]
        "const app = document.querySelector('gradio-app');"
        "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight,"
        " app ? app.scrollHeight : 0);")
    driver.set_window_size(1400, max(1200, int(height) + 160))  # type: ignore[attr-defined]
    assert driver.save_screenshot(str(path))  # type: ignore[attr-defined]
    assert path.read_bytes()[:4] == b"\x89PNG"
    folder = os.environ.get("MUSIGEN_DEMO_SCREENSHOTS")
    if folder:  # a copy for a person to look at
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(folder) / path.name)


#: Fetch the file behind an audio player's download link and decode it in the page:
#: the browser itself must be able to play it, and it must last longer than zero seconds.
DECODE_JS = """
const [id, done] = arguments;
const link = document.querySelector('#' + id + ' a[download]');
if (!link) { done('no download link in #' + id); return; }
fetch(link.href).then(r => r.arrayBuffer())
  .then(buf => new (window.AudioContext || window.webkitAudioContext)().decodeAudioData(buf))
  .then(audio => done(audio.duration), err => done('decode failed: ' + err));
"""


def test_generate_edit_twice_and_compare_versions(server: str, browser: object,
                                                  tmp_path: Path) -> None:
    d = browser
    d.set_script_timeout(30)  # type: ignore[attr-defined]
    d.get(server)  # type: ignore[attr-defined]
    WebDriverWait(d, 60).until(lambda x: x.find_elements(By.CSS_SELECTOR, "#gen-prompt textarea"))
    vocabulary = d.find_element(By.ID, "vocabulary").text  # type: ignore[attr-defined]
    assert "drums" in vocabulary and "funk" in vocabulary

    # an absurd duration is refused in the page, in words
    _type(d, "#gen-prompt textarea", "calm jazz with piano and bass")
    _type(d, "#gen-duration input", "100000")
    _click(d, "gen-run")
    assert "maximum" in _wait_text(d, "gen-status", "duration")

    _type(d, "#gen-duration input", "2")
    _click(d, "gen-run")
    _wait_text(d, "gen-status", "generated 2 s")
    assert d.find_elements(By.CSS_SELECTOR, "#gen-timeline table tr")  # type: ignore[attr-defined]
    assert d.find_elements(By.CSS_SELECTOR, "#gen-spectrogram img")  # type: ignore[attr-defined]
    _screenshot(d, tmp_path / "demo_generate.png")

    _click(d, "gen-to-edit")
    _wait_text(d, "edit-status", "v0 is the generated piece")
    for n, text in enumerate(["remove drums", "add piano"], start=1):
        _type(d, "#edit-instruction textarea", text)
        _click(d, "edit-run")
        _wait_text(d, "edit-status", f"v{n}:")
        WebDriverWait(d, STEP_TIMEOUT).until(
            lambda x, n=n: x.find_elements(By.ID, f"edit-history-audio-{n}"))

    # an unknown instrument is refused and the history is unchanged
    _type(d, "#edit-instruction textarea", "remove the kazoo")
    _click(d, "edit-run")
    assert "drums, bass" in _wait_text(d, "edit-status", "unknown instrument 'kazoo'")

    players = d.find_elements(By.CSS_SELECTOR, "[id^='edit-history-audio-']")  # type: ignore[attr-defined]
    assert sorted(p.get_attribute("id") for p in players) == [
        f"edit-history-audio-{i}" for i in range(3)]
    for i in range(3):
        seconds = d.execute_async_script(DECODE_JS, f"edit-history-audio-{i}")  # type: ignore[attr-defined]
        assert isinstance(seconds, (int, float)) and seconds == pytest.approx(2.0, abs=0.05), seconds
    assert "current" in d.find_element(By.ID, "edit-history-title-2").text  # type: ignore[attr-defined]
    chords = d.find_element(By.ID, "edit-chords").text  # type: ignore[attr-defined]
    assert "source: v1" in chords and "edit: v2" in chords

    # restore v1: it becomes current, and nothing is lost
    _click(d, "edit-restore-1")
    _wait_text(d, "edit-status", "restored v1")
    WebDriverWait(d, 30).until(
        lambda x: "current" in x.find_element(By.ID, "edit-history-title-1").text)
    assert len(d.find_elements(By.CSS_SELECTOR, "[id^='edit-history-audio-']")) == 3  # type: ignore[attr-defined]
    page = d.page_source  # type: ignore[attr-defined]
    assert "Traceback" not in page

    _screenshot(d, tmp_path / "demo_edit_history.png")
