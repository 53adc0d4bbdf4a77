"""The web page in a real browser: Debian's headless Chromium driven by Selenium through Debian's
chromedriver (no browser download), against a running ``specdenoise serve``.

Upload a noisy recording (real speech + real noise) -> result: both spectrograms loaded, both
players have sources, the downloaded file is the denoised audio (same length and rate, SI-SDR up);
errors show as one sentence; the layout fits a phone. A second browser records from Chromium's
fake microphone fed by a WAV file. The upload test's screenshot is the README's picture
(``SPECDENOISE_WRITE_SCREENSHOT=1`` writes it to docs/img/serve.png).
"""
from __future__ import annotations

import base64
import io
import os
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from conftest import REPO_ROOT as REPO
from conftest import clean_and_noisy, wait_until
from serve_support import CliServer, files_under
from specdenoise.metrics import si_sdr

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser_tools():
    if not (CHROMIUM and DRIVER):
        message = "chromium and chromium-driver (Debian packages) are needed for the browser tests"
        if os.environ.get("CI"):
            pytest.fail(message + "; .ci/run installs them")
        pytest.skip(message)
    return CHROMIUM, DRIVER


def make_driver(download_dir: Path, *extra: str, width: int = 1100, height: int = 1300):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--no-first-run", "--disable-extensions", "--disable-background-networking",
                f"--window-size={width},{height}", *extra):
        opts.add_argument(arg)
    opts.add_experimental_option("prefs", {"download.default_directory": str(download_dir),
                                           "download.prompt_for_download": False})
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=DRIVER))
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
    driver.set_script_timeout(30)
    return driver


def wait_for(driver, script: str, timeout: float = 120.0, what: str = ""):
    value = wait_until(lambda: driver.execute_script(script), timeout, 0.1)
    if not value:
        error = driver.execute_script("const e = document.getElementById('error'); return e.hidden ? '' : e.textContent")
        raise AssertionError(f"timed out waiting for {what or script}; page error: {error!r}")
    return value


RESULT_SHOWN = "return !document.getElementById('result').hidden"
ERROR_SHOWN = "const e = document.getElementById('error'); return e.hidden ? null : e.textContent"
IMAGES_LOADED = """return ['img-noisy', 'img-denoised'].every(id => {
    const img = document.getElementById(id); return img.complete && img.naturalWidth > 300; })"""
PLAYERS_READY = """return ['audio-noisy', 'audio-denoised'].map(id => {
    const a = document.getElementById(id); return a.readyState >= 1 ? [a.src, a.duration] : null; })"""


DROP_FILE = """const [url, done] = arguments;
fetch(url).then(r => r.blob()).then(blob => {
  const dt = new DataTransfer();
  dt.items.add(new File([blob], 'dropped.wav', { type: 'audio/wav' }));
  const zone = document.getElementById('drop');
  zone.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
  zone.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  done(true);
});"""


def page_screenshot(driver, path: Path) -> Path:
    """The whole page as one PNG (Chromium's DevTools capture beyond the viewport)."""
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def severe_console_messages(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_upload_in_browser_shows_result_and_downloads_the_denoised_audio(browser_tools, shared_data, rng, tmp_path):
    clean, noisy = clean_and_noisy(shared_data, rng, 5.0, snr_db=0.0)
    source = tmp_path / "kitchen take.wav"
    sf.write(source, noisy, 16000, subtype="PCM_16")
    noisy_read, _ = sf.read(source, dtype="float32")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    work = tmp_path / "work"
    with CliServer("--jobs", "1", workdir=work) as server:
        driver = make_driver(downloads)
        try:
            driver.get(server.url + "/")
            assert driver.title.startswith("specdenoise")
            driver.find_element("id", "file-input").send_keys(str(source))
            wait_for(driver, RESULT_SHOWN, what="the result")
            wait_for(driver, IMAGES_LOADED, 30, "both spectrograms")
            players = wait_for(driver, f"const r = (function(){{{PLAYERS_READY}}})(); return r.every(x => x) && r", 30, "players")
            (noisy_src, noisy_dur), (clean_src, clean_dur) = players
            assert noisy_src.startswith("blob:") and clean_src.endswith("/audio")
            assert abs(noisy_dur - 5.0) < 0.05 and abs(clean_dur - 5.0) < 0.05
            srcs = driver.execute_script("return ['img-noisy','img-denoised'].map(i => document.getElementById(i).src)")
            assert "which=noisy" in srcs[0] and "which=denoised" in srcs[1]
            assert "5.0 s, 16 kHz, mono, WAV" in driver.find_element("id", "result-meta").text

            shot = page_screenshot(driver, tmp_path / "serve.png")
            assert shot.read_bytes().startswith(b"\x89PNG")
            if os.environ.get("SPECDENOISE_WRITE_SCREENSHOT") == "1":
                shutil.copyfile(shot, REPO / "docs" / "img" / "serve.png")

            driver.find_element("id", "download").click()
            target = downloads / "kitchen take-denoised.wav"
            assert wait_until(lambda: target.exists() and not list(downloads.glob("*.crdownload")), 30), \
                list(downloads.iterdir())
            out, rate = sf.read(target, dtype="float32")
            assert rate == 16000 and out.shape == noisy.shape
            assert si_sdr(clean, out) > si_sdr(clean, noisy_read), (si_sdr(clean, noisy_read), si_sdr(clean, out))
            assert severe_console_messages(driver) == []

            # a wrong file: one sentence on the page, from the server
            bad = tmp_path / "notes.mp3"
            bad.write_text("not sound at all")
            driver.find_element("id", "file-input").send_keys(str(bad))
            message = wait_for(driver, ERROR_SHOWN, 30, "the error")
            assert message.startswith("This file is not audio") and message.count(".") == 1, message
            assert driver.execute_script(RESULT_SHOWN) is False

            # a phone: a file dropped on the page (a real DragEvent carrying a File), nothing
            # wider than the screen, the buttons still there
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",  # a phone's screen
                                   {"width": 390, "height": 844, "deviceScaleFactor": 3, "mobile": True})
            assert driver.execute_script("return window.innerWidth") == 390
            driver.execute_async_script(DROP_FILE, clean_src)
            wait_for(driver, "return document.getElementById('noisy-name').textContent === 'dropped.wav' && "
                             "!document.getElementById('result').hidden", 120, "the result of the drop")
            wait_for(driver, IMAGES_LOADED, 30, "spectrograms on a phone")
            assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
            assert driver.find_element("id", "download").is_displayed()
        finally:
            driver.quit()
    assert not work.exists() or files_under(work) == []


def test_record_from_fake_microphone(browser_tools, shared_data, rng, tmp_path):
    clean, noisy = clean_and_noisy(shared_data, rng, 4.0)
    mic = tmp_path / "mic.wav"
    sf.write(mic, noisy, 16000, subtype="PCM_16")
    work = tmp_path / "work"
    with CliServer(workdir=work) as server:
        driver = make_driver(tmp_path, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                             f"--use-file-for-fake-audio-capture={mic}")
        try:
            driver.get(server.url + "/")
            record = driver.find_element("id", "record")
            record.click()
            wait_for(driver, "return document.getElementById('record').getAttribute('aria-pressed') === 'true'",
                     10, "recording to start")
            # three seconds by the page's own recording clock ("Stop 0:03"), not a fixed sleep
            wait_for(driver, "return Number(document.getElementById('record-label').textContent.split(':')[1]) >= 3",
                     30, "three seconds of recording")
            record.click()
            wait_for(driver, RESULT_SHOWN, what="the result of the recording")
            wait_for(driver, IMAGES_LOADED, 30, "both spectrograms")
            audio_url = driver.execute_script("return document.getElementById('audio-denoised').src")
            meta = driver.find_element("id", "result-meta").text
            assert "WEBM" in meta and "48 kHz" in meta, meta
            assert driver.find_element("id", "noisy-name").text == "recording.webm"
            assert severe_console_messages(driver) == []
        finally:
            driver.quit()
        data = httpx.get(audio_url, timeout=30).content
    import av

    with av.open(io.BytesIO(data)) as c:
        out = np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1)
        rate = c.streams.audio[0].rate
    assert rate == 48000 and 2.0 < out.shape[1] / rate < 5.0
    # the microphone's sound (our speech, denoised) came through, not silence or a test tone
    import soxr

    heard = soxr.resample(out.mean(axis=0), 48000, 16000)
    assert np.sqrt(np.mean(heard**2)) > 1e-3
    loop = np.tile(clean, 3)
    n = 8000  # half-second windows; the loudest ones are speech, wherever the recording started
    windows = sorted((heard[i : i + n] for i in range(0, len(heard) - n, n)), key=lambda w: -np.sum(w**2))[:3]
    energy = np.sqrt(np.convolve(loop**2, np.ones(n), mode="valid"))
    best = [float(np.max(np.correlate(loop, w, mode="valid") / (np.linalg.norm(w) * energy + 1e-9))) for w in windows]
    print("correlation with the fed speech:", best)
    assert max(best) > 0.5, best
