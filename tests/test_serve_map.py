"""The page's map in a real browser (Debian's Chromium driven by Playwright) against `geomag serve`
with the shipped nano, which finds masks: for a plain image (pixel coordinates) and a GeoTIFF (Web
Mercator), the map renders, its mask layer holds the answer's masks, the layer control hides them,
and the pixels that the layer paints on the screenshot are the mask's own pixels."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

GEOTIFF_NAME = "rasterio_RGB.byte.tif"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def chromium() -> str:
    if not os.path.isfile(CHROMIUM):
        if os.environ.get("CI"):  # CI installs it (.ci/run): its absence there is a failure
            pytest.fail("no chromium: .ci/run installs it with `apt-get install chromium`")
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    return CHROMIUM


def _grow(mask: np.ndarray, steps: int) -> np.ndarray:
    """`mask` dilated by `steps` pixels (4-neighbourhood), with numpy alone."""
    out = mask.copy()
    for _ in range(steps):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out


@pytest.fixture(scope="module")
def nano_server():
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "geomag.cli", "serve", "--model", "nano", "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    first = proc.stdout.readline()
    if not first.startswith("GeoMag server at "):
        proc.kill()
        pytest.fail(first + proc.stderr.read())
    yield first.split()[3]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 0
    assert "Traceback" not in proc.stderr.read()


def _parse_on_page(page, image, prompt: str) -> dict:
    """Upload, prompt (pixel level, MagCrop off: quick), submit; the JSON the page got."""
    page.set_input_files("#file", str(image))
    page.fill("#prompt", prompt)
    page.select_option("#granularity", "pixel")
    page.uncheck("#magcrop")
    with page.expect_response(lambda r: "/v1/parse" in r.url, timeout=300_000) as answer:
        page.click("#submit")
    page.wait_for_function("() => window.geomagMap && document.getElementById('status').textContent.startsWith('Done')",
                           timeout=60_000)  # fmt: skip
    return answer.value.json()


def _screen_to_image(page, kind: str, transform=None, crs=None):
    """Per pixel of the #map element: (column, row) of the image under it (Leaflet's projection is
    linear on the screen: Web Mercator metres for a GeoTIFF, pixels for a plain image)."""
    ax, ay, bx, by, w, h = page.evaluate(
        "() => { const m = geomagMap.map, s = m.getSize(), p = (q) => m.options.crs.project(m.containerPointToLatLng(q));"
        " const a = p([0, 0]), b = p([s.x, s.y]); return [a.x, a.y, b.x, b.y, s.x, s.y]; }"
    )
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    x, y = ax + u / w * (bx - ax), ay + v / h * (by - ay)
    if kind == "pixel":
        return x, -y
    import rasterio.warp

    mx, my = rasterio.warp.transform("EPSG:3857", crs, x.ravel(), y.ravel())
    col, row = ~transform @ (np.asarray(mx), np.asarray(my))
    return col.reshape(x.shape), row.reshape(x.shape)


def _painted(page) -> np.ndarray:
    """Which pixels of the map the mask layer paints: a screenshot with it, one without (toggled off
    in the layer control), compared; the control's own box left out."""
    w, h = page.evaluate("() => { const s = geomagMap.map.getSize(); return [s.x, s.y]; }")

    def shot() -> np.ndarray:
        picture = Image.open(io.BytesIO(page.locator("#map").screenshot())).convert("RGB")
        return np.asarray(picture, int)[:h, :w]

    page.mouse.move(0, 0)
    with_layer = shot()
    page.locator(".leaflet-control-layers label", has_text="Masks").locator("input").uncheck()
    page.mouse.move(0, 0)
    without = shot()
    assert page.evaluate("() => !geomagMap.map.hasLayer(geomagMap.masks)"), "the toggle hides the layer"
    changed = np.abs(with_layer - without).sum(axis=-1) > 30
    box, frame = page.locator(".leaflet-control-layers").bounding_box(), page.locator("#map").bounding_box()
    x0, y0 = int(box["x"] - frame["x"]) - 2, int(box["y"] - frame["y"]) - 2
    changed[max(0, y0) : y0 + int(box["height"]) + 4, max(0, x0) : x0 + int(box["width"]) + 4] = False
    page.locator(".leaflet-control-layers label", has_text="Masks").locator("input").check()
    return changed


def _check_mask_on_screen(
    changed: np.ndarray, mask: np.ndarray, col: np.ndarray, row: np.ndarray
) -> tuple[float, float]:
    h, w = mask.shape
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    expected = np.zeros(changed.shape, bool)
    expected[inside] = mask[row[inside].astype(int), col[inside].astype(int)]
    assert expected.sum() > 200, "the mask is visible on the map"
    core = ~_grow(~expected, 3)  # the outline (2 px) may fall either side of the mask's edge
    near = _grow(expected, 4)
    assert changed[core].mean() > 0.95, "the layer paints the mask's pixels"
    assert changed[~near].mean() < 0.005, "and nothing away from them"
    rows, cols = np.nonzero(core)
    middle = np.argmin((rows - rows.mean()) ** 2 + (cols - cols.mean()) ** 2)
    return float(cols[middle]) + 0.5, float(rows[middle]) + 0.5  # a point inside the mask, on the map


def test_the_map_shows_the_masks_where_they_are(chromium, nano_server, court_image, real_data, tmp_path):
    import rasterio
    from playwright.sync_api import expect, sync_playwright

    from geomag.batch.outputs import decode_rle

    geotiff = real_data / "geotiff" / GEOTIFF_NAME
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(nano_server + "/")

            # a plain image: pixel coordinates
            body = _parse_on_page(page, court_image, "Segment the tennis court on the left.")
            assert body["masks"], "nano finds a mask here"
            expect(page.locator("#map .leaflet-image-layer")).to_have_count(1)
            assert page.evaluate("() => geomagMap.kind") == "pixel"
            assert page.evaluate("() => geomagMap.masks.getLayers().length") == len(body["masks"])
            expect(page.locator("#answer .chip").first).to_have_text("[mask 1]")
            assert "[SEG]" not in page.locator("#answer").inner_text()
            expect(page.locator("#plan")).to_contain_text("MagCrop off")
            page.mouse.move(*_centre(page))
            expect(page.locator("#cursor")).to_contain_text("(pixels)")
            page.screenshot(path=tmp_path / "map_pixel.png", full_page=True)
            col, row = _screen_to_image(page, "pixel")
            u, v = _check_mask_on_screen(_painted(page), decode_rle(body["masks"][0]["rle"]), col, row)
            frame = page.locator("#map").bounding_box()
            page.mouse.click(frame["x"] + u, frame["y"] + v)  # on the mask: its popup
            expect(page.locator(".leaflet-popup-content")).to_contain_text("mask 1")
            expect(page.locator(".leaflet-popup-content")).to_contain_text("score")

            # a GeoTIFF: on a Web Mercator map, with a scale bar and lon/lat under the cursor
            body = _parse_on_page(page, geotiff, "Segment the trees.")
            assert body["masks"], "nano finds a mask here"
            assert page.evaluate("() => geomagMap.kind") == "geo"
            assert page.evaluate("() => geomagMap.masks.getLayers().length") == len(body["masks"])
            expect(page.locator(".leaflet-control-scale")).to_be_visible()
            page.mouse.move(*_centre(page))
            expect(page.locator("#cursor")).to_contain_text("(WGS84)")
            page.click("#zoom-result")
            page.wait_for_timeout(500)
            page.screenshot(path=tmp_path / "map_geo.png", full_page=True)
            with rasterio.open(geotiff) as src:
                col, row = _screen_to_image(page, "geo", src.transform, src.crs)
            _check_mask_on_screen(_painted(page), decode_rle(body["masks"][0]["rle"]), col, row)
            assert not errors, errors
        finally:
            browser.close()


def _centre(page) -> tuple[float, float]:
    box = page.locator("#map").bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
