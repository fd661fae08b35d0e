"""The demo page in a real browser: headless Chromium (Debian's package, driven by Playwright) against a
live `geomag serve` on 127.0.0.1 with the tiny checkpoint. Upload, prompt, submit, then the answer
and the overlay must appear; the screenshot is kept in the test's folder."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GEOTIFF = ROOT / "examples" / "neon_osbs029.tif"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def chromium() -> str:
    if not Path(CHROMIUM).is_file():
        if os.environ.get("CI"):  # CI installs it (.ci/run): its absence there is a failure
            pytest.fail("no chromium: .ci/run installs it with `apt-get install chromium`")
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture(scope="module")
def served(tiny_checkpoint):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "geomag.cli", "serve", "--model", str(tiny_checkpoint), "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    first = proc.stdout.readline()
    if not first.startswith("GeoMag server at "):
        proc.kill()
        pytest.fail(first + proc.stderr.read())
    yield first.split()[3]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 0
    assert "Traceback" not in proc.stderr.read()


def test_the_demo_page_parses_an_upload(chromium, served, court_image, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(served + "/")
            expect(page.locator("#server-info")).to_contain_text("on cpu")
            page.set_input_files("#file", str(court_image))
            page.fill("#prompt", "Are there tennis courts in this image?")
            page.select_option("#granularity", "region")  # PSC on the tiny model: quick
            page.click("details.advanced summary")
            page.fill("#max-new-tokens", "12")  # the tiny model writes noise: keep it short
            page.click("#submit")
            expect(page.locator("#results")).to_be_visible(timeout=120_000)
            expect(page.locator("#granularity-out")).to_have_text("region")
            expect(page.locator("#answer")).not_to_be_empty()
            page.wait_for_function("() => { const i = document.getElementById('overlay'); "
                                   "return i.complete && i.naturalWidth === 800; }")  # fmt: skip
            expect(page.locator("#heatmap-figure")).to_be_visible()
            expect(page.locator("#downloads a", has_text="result.json")).to_have_count(1)
            expect(page.locator("#status")).to_contain_text("Done in")
            page.screenshot(path=tmp_path / "demo_upload.png", full_page=True)

            # a bundled example GeoTIFF: the GeoJSON download appears
            page.click("#examples button:text('neon_osbs029.tif')")
            expect(page.locator("#chosen")).to_contain_text("neon_osbs029.tif")
            page.fill("#prompt", "Where are the trees?")
            page.click("#submit")
            expect(page.locator("#downloads a", has_text="result.geojson")).to_have_count(1, timeout=120_000)
            page.screenshot(path=tmp_path / "demo_geotiff.png", full_page=True)

            # a mistake is one line on the page, and the page goes on working
            page.fill("#prompt", "x" * 2500)
            page.click("#submit")
            expect(page.locator("#status.error")).to_contain_text("over the limit of 2000")
            assert not errors, errors
        finally:
            browser.close()
    assert (tmp_path / "demo_upload.png").stat().st_size > 10_000
