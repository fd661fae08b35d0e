"""STAC in and out: a static catalog of COGs cut from a real GeoTIFF (written by pystac, served over
loopback HTTP), filtered by bbox and time, parsed by `geomag batch` on the local engine and on Ray
(the same results), with one STAC Item per result that pystac reads back as a catalog."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pystac
import pytest
import rasterio
import rasterio.warp
from rasterio.windows import Window

from geomag.batch.catalog import StacQuery, batch_requests, interval, read_items
from geomag.batch.jobs import BatchSettings, make_jobs
from geomag.cli import main
from geomag.errors import GeoMagError
from geomag.loopback import FileServer, make_cog
from geomag.options import ParseOptions
from geomag.serve.runner import bind

PROMPT = "Segment the river."
FAST = ["--granularity", "pixel", "--max-new-tokens", "2", "--no-progress"]
YEARS = (2021, 2022, 2023)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture(scope="module")
def site(real_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """catalog.json (pystac, self-contained) with items scene-0..2 (a 256 px COG each, cut from the
    real rasterio_RGB.byte.tif; one a year, 2021-2023; asset `visual`, relative href) and scene-x
    (only a `thumbnail` asset)."""
    root = tmp_path_factory.mktemp("site")
    real = real_data / "geotiff" / "rasterio_RGB.byte.tif"
    catalog = pystac.Catalog("scenes", "COGs cut from rasterio's RGB.byte.tif")
    with rasterio.open(real) as src:
        for i, year in enumerate(YEARS):
            window = Window(150 + 160 * i, 200 + 60 * i, 256, 256)
            cut = root / f"cut_{i}.tif"
            profile = {**src.profile, "width": 256, "height": 256, "transform": src.window_transform(window)}
            with rasterio.open(cut, "w", **profile) as dst:
                dst.write(src.read(window=window))
            (root / f"scene-{i}").mkdir()
            make_cog(cut, root / f"scene-{i}" / f"scene-{i}.tif")
            cut.unlink()
            bounds = rasterio.warp.transform_bounds(
                src.crs, "EPSG:4326", *rasterio.windows.bounds(window, src.transform)
            )
            west, south, east, north = bounds
            geometry = {
                "type": "Polygon",
                "coordinates": [[[west, south], [east, south], [east, north], [west, north], [west, south]]],
            }
            item = pystac.Item(f"scene-{i}", geometry, list(bounds), datetime(year, 6, 1, tzinfo=UTC), {})
            item.add_asset("visual", pystac.Asset(f"./scene-{i}.tif", media_type=pystac.MediaType.COG))
            catalog.add_item(item)
    extra = pystac.Item("scene-x", None, None, datetime(2022, 1, 1, tzinfo=UTC), {})
    extra.add_asset("thumbnail", pystac.Asset("./x.png", media_type=pystac.MediaType.PNG))
    catalog.add_item(extra)
    catalog.normalize_hrefs(str(root))
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return root


@pytest.fixture
def served(site: Path):
    with FileServer(site) as server:
        yield server


def ids(items) -> list[str]:
    return sorted(item.id for item in items)


def test_items_are_filtered_by_bbox_and_datetime(site):
    catalog = str(site / "catalog.json")
    assert ids(read_items(catalog, StacQuery("visual"))) == ["scene-0", "scene-1", "scene-2", "scene-x"]
    assert ids(read_items(catalog, StacQuery("visual", datetime="2022-01-01/2022-12-31"))) == [
        "scene-1",
        "scene-x",
    ]
    assert ids(read_items(catalog, StacQuery("visual", datetime="../2021-06-01"))) == ["scene-0"]
    assert ids(read_items(catalog, StacQuery("visual", datetime="2023-06-01"))) == ["scene-2"]
    first = read_items(catalog, StacQuery("visual", datetime="2021-06-01"))[0]
    w, s = first.bbox[:2]
    inside = StacQuery.parse("visual", f"{w + 0.001},{s + 0.001},{w + 0.002},{s + 0.002}")
    assert ids(read_items(catalog, inside)) == ["scene-0"]  # items without a bbox never match one
    far = StacQuery.parse("visual", "10,40,11,41")
    assert read_items(catalog, far) == []
    start, end = interval("2024-01-01/2024-01-31")
    assert (start.isoformat(), end.date().isoformat()) == ("2024-01-01T00:00:00+00:00", "2024-01-31")


def test_stac_mistakes_are_one_clear_line(site, tmp_path, capsys):
    catalog = str(site / "catalog.json")
    out = str(tmp_path / "D")
    base = ["batch", catalog, "--prompt", "x", "--out", out]
    cases = [
        (base, "is STAC JSON: choose the asset to parse with --asset KEY"),
        ([*base, "--asset", "nir"], "has the asset 'nir'; its items' assets: thumbnail, visual"),
        ([*base, "--asset", "visual", "--bbox", "1,2,3"], "--bbox '1,2,3': give west,south,east,north"),
        ([*base, "--asset", "visual", "--datetime", "June"], "is not an RFC 3339 date"),
        ([*base, "--asset", "visual", "--datetime", "1990/1991-01-01"], "not an RFC 3339 date or time"),
        ([*base, "--asset", "visual", "--bbox", "10,40,11,41"], "no STAC item of"),
        ([*base, "--datetime", "2022-01-01"], "--datetime: for STAC sources, with --asset KEY"),
    ]
    for argv, expected in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert expected in err and len(err.strip().splitlines()) == 1, (argv, err)
    assert not Path(out).exists()


def test_item_collection_input_and_no_download_when_making_jobs(site, served):
    items = read_items(f"{served.url}/catalog.json", StacQuery("visual"))
    collection = site / "collection.json"
    collection.write_text(json.dumps(pystac.ItemCollection(items).to_dict()))
    assert ids(read_items(str(collection), StacQuery("visual"))) == ids(items)
    served.reset()
    with pytest.warns(UserWarning, match="1 STAC item\\(s\\) have no asset 'visual' and are left out"):
        requests = batch_requests(f"{served.url}/catalog.json", [PROMPT], StacQuery("visual"))
    assert [r.image for r in requests] == [f"{served.url}/scene-{i}/scene-{i}.tif" for i in range(3)]
    settings = BatchSettings(model="nano", options=ParseOptions().to_dict())
    jobs = make_jobs(requests, settings)
    assert [j.stac.item for j in jobs] == ["scene-0", "scene-1", "scene-2"]
    assert not any(name.endswith(".tif") for name in served.requests)  # the driver read no raster


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def comparable(rs: list[dict]) -> list[dict]:
    return sorted(({k: v for k, v in r.items() if k != "timings"} for r in rs), key=lambda r: r["key"])


@pytest.fixture(scope="module")
def local_stac_run(site: Path, seg_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory):
    """The served catalog's three scenes parsed on the local engine (the server's URL stays valid
    for the module: the Ray run must see the same URLs, hence the same keys)."""
    with FileServer(site) as server:
        out = tmp_path_factory.mktemp("stac_local") / "D"
        argv = [
            "batch",
            f"{server.url}/catalog.json",
            "--asset",
            "visual",
            "--prompt",
            PROMPT,
            "--out",
            str(out),
        ]
        assert main([*argv, "--model", str(seg_checkpoint), *FAST]) == 0  # warns of scene-x, on stderr
        yield server, out, argv


def test_a_stac_batch_records_items_and_writes_a_stac_item_per_result(local_stac_run, seg_checkpoint, capsys):
    server, out, argv = local_stac_run
    rs = records(out)
    assert sorted(r["item"] for r in rs) == ["scene-0", "scene-1", "scene-2"]
    for r in rs:
        assert "error" not in r and r["asset"] == "visual" and r["masks"]
        assert r["input"] == f"{server.url}/{r['item']}/{r['item']}.tif"  # the asset's href
        assert r["item_href"] == f"{server.url}/{r['item']}/{r['item']}.json"
    catalog = pystac.Catalog.from_file(str(out / "stac" / "catalog.json"))
    results = {item.properties["geomag:source_item"]: item for item in catalog.get_items()}
    assert sorted(results) == ["scene-0", "scene-1", "scene-2"]
    sources = {item.id: item for item in read_items(f"{server.url}/catalog.json", StacQuery("visual"))}
    for source_id, item in results.items():
        (link,) = [link for link in item.links if link.rel == "derived_from"]
        assert link.get_absolute_href() == f"{server.url}/{source_id}/{source_id}.json"
        assert item.datetime == sources[source_id].datetime
        assert item.properties["geomag:prompt"] == PROMPT
        assert item.properties["geomag:model"] == str(seg_checkpoint)
        assert item.properties["geomag:options"]["granularity"] == "pixel"
        assert item.properties["geomag:options"]["magcrop"] is True
        assert item.properties["proj:code"] == "EPSG:32618"
        # the whole scene was parsed: its footprint is the source item's bbox
        assert item.bbox == pytest.approx(sources[source_id].bbox, abs=1e-3)
        for asset in item.assets.values():
            assert Path(asset.get_absolute_href()).is_file()
        vectors = json.loads(Path(item.assets["vectors"].get_absolute_href()).read_text())
        (record,) = [r for r in rs if r["item"] == source_id]
        assert len(vectors["features"]) == sum(m["area"] > 0 for m in record["masks"])
        assert all(f["properties"]["prompt"] == PROMPT for f in vectors["features"])
    # the results are a STAC source again: their masks as the asset of a new batch
    again = read_items(
        str(out / "stac" / "catalog.json"), StacQuery("mask_00", datetime="2022-01-01/2022-12-31")
    )
    assert [item.properties["geomag:source_item"] for item in again] == ["scene-1"]
    # a rerun resumes by item id (and window): nothing to do
    capsys.readouterr()
    assert main([*argv, "--model", str(seg_checkpoint), *FAST]) == 0
    captured = capsys.readouterr()
    assert "0 done, 3 skipped, 0 failed" in captured.out
    assert "geomag: warning: 1 STAC item(s) have no asset 'visual' and are left out (scene-x)" in captured.err


def test_a_stac_batch_on_ray_equals_the_local_engine(ray_cluster, local_stac_run, seg_checkpoint, tmp_path):
    """Each Ray task reads its own scene over HTTP (the driver made the jobs without reading any)."""
    server, local_out, argv = local_stac_run
    out = tmp_path / "R"
    ray_argv = [
        *argv[:-1],
        str(out),
        "--model",
        str(seg_checkpoint),
        *FAST,
        "--engine",
        "ray",
        "--workers",
        "2",
    ]
    server.reset()
    assert main(ray_argv) == 0
    assert comparable(records(out)) == comparable(records(local_out))
    assert all(server.sent[f"scene-{i}/scene-{i}.tif"] > 0 for i in range(3))  # read by the workers
    local_items = sorted(p.name for p in (local_out / "stac").iterdir())
    assert sorted(p.name for p in (out / "stac").iterdir()) == local_items


def test_batch_takes_a_url_and_a_job_file_with_urls(served, tiny_checkpoint, tmp_path):
    jobs = tmp_path / "jobs.jsonl"
    lines = [
        {"image": f"{served.url}/scene-0/scene-0.tif", "prompt": "What is this?", "granularity": "image"}
    ]
    jobs.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "J"
    assert (
        main(
            ["batch", str(jobs), "--out", str(out), "--model", str(tiny_checkpoint), "--max-new-tokens", "2"]
        )
        == 0
    )
    (r,) = records(out)
    assert "error" not in r and r["input"] == lines[0]["image"] and r["crs"] == "EPSG:32618"
    item = json.loads((out / r["stac_item"]).read_text())
    assert item["properties"]["geomag:input"] == lines[0]["image"] and "derived_from" not in json.dumps(item)


def test_a_missing_remote_image_is_an_error_line(served, tiny_checkpoint, tmp_path):
    with pytest.raises(GeoMagError):
        batch_requests(str(tmp_path / "nothing.json"), ["x"], StacQuery("visual"))
    out = tmp_path / "E"
    argv = [
        "batch",
        f"{served.url}/nope.tif",
        "--prompt",
        "x",
        "--out",
        str(out),
        "--model",
        str(tiny_checkpoint),
    ]
    assert main([*argv, "--no-progress"]) == 0  # a failed job is a line; the batch itself finishes
    (r,) = records(out)
    assert r["error"] == f"remote raster not found (HTTP 404): {served.url}/nope.tif"


@pytest.fixture(scope="module")
def stac_api(site: Path, tmp_path_factory: pytest.TempPathFactory):
    """A real STAC API (`rustac serve`, its memory backend) holding the site's three scenes as the
    collection `scenes`, their assets at absolute URLs of a loopback file server: (API URL, files URL)."""
    rustac = shutil.which("rustac") or str(Path(sys.executable).with_name("rustac"))
    if not Path(rustac).exists():
        pytest.skip("rustac (a dev dependency) is not installed")
    folder = tmp_path_factory.mktemp("stac_api")
    with FileServer(site) as files:
        items = []
        for item in read_items(str(site / "catalog.json"), StacQuery("visual")):
            if "visual" not in item.assets:
                continue
            item.collection_id = "scenes"
            item.assets["visual"].href = f"{files.url}/{item.id}/{item.id}.tif"
            items.append(item.to_dict(include_self_link=False, transform_hrefs=False))
        extent = pystac.Extent(
            pystac.SpatialExtent([[-180, -90, 180, 90]]), pystac.TemporalExtent([[None, None]])
        )
        collection = pystac.Collection("scenes", "three COGs", extent)
        (folder / "collection.json").write_text(json.dumps(collection.to_dict(include_self_link=False)))
        (folder / "items.json").write_text(json.dumps({"type": "FeatureCollection", "features": items}))
        sock = bind("127.0.0.1", 0)
        port = sock.getsockname()[1]
        sock.close()
        api = f"http://127.0.0.1:{port}"
        command = [rustac, "serve", "--addr", f"127.0.0.1:{port}", "collection.json", "items.json"]
        process = subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            for _ in range(100):
                try:
                    if httpx.get(f"{api}/", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            else:
                pytest.fail(
                    f"rustac serve did not start: {process.stderr.read().decode() if process.stderr else ''}"
                )
            yield api, files.url
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_a_stac_api_search_filters_on_the_api_and_feeds_a_batch(stac_api, seg_checkpoint, tmp_path):
    api, files = stac_api
    assert ids(read_items(f"{api}/", StacQuery("visual"))) == ["scene-0", "scene-1", "scene-2"]
    assert ids(read_items(f"{api}/", StacQuery("visual", datetime="2022-01-01/2022-12-31"))) == ["scene-1"]
    assert ids(read_items(f"{api}/", StacQuery("visual", collections=("scenes",), max_items=2))) == [
        "scene-0",
        "scene-1",
    ]
    assert read_items(f"{api}/", StacQuery("visual", collections=("other",))) == []
    first = read_items(f"{api}/", StacQuery("visual", datetime="2021-06-01"))[0]
    w, s = first.bbox[:2]
    inside = StacQuery.parse("visual", f"{w + 0.001},{s + 0.001},{w + 0.002},{s + 0.002}")
    assert ids(read_items(f"{api}/", inside)) == ["scene-0"]
    out = tmp_path / "A"
    argv = ["batch", f"{api}/", "--asset", "visual", "--datetime", "2023-01-01/2023-12-31", "--prompt", PROMPT,
            "--out", str(out), "--model", str(seg_checkpoint), *FAST]  # fmt: skip
    assert main(argv) == 0
    (r,) = records(out)
    assert r["item"] == "scene-2" and r["input"] == f"{files}/scene-2/scene-2.tif" and "error" not in r
